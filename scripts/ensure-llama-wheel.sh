#!/usr/bin/env bash
# Builds the llama-cpp-python wheel once per version and build flags, into a cache outside the
# repository, and prints the folder that holds it; does nothing but print when it is there.
#
#   scripts/ensure-llama-wheel.sh PYTHON VERSION
#
# llama-cpp-python is sdist-only on PyPI, so every install compiles llama.cpp (about 5 minutes on
# 2 cores). pip's own cache keys a built wheel by its source only, not by CMAKE_ARGS, so it would
# hand back a wheel built with other flags; this cache keys it by both.
#
# On x86-64 the build leaves out llama.cpp's AMX kernels: on hosts whose CPU has AMX but whose
# kernel or hypervisor does not grant its tile state, they crash every prompt of more than one
# token (SIGSEGV in ggml_backend_amx_mul_mat). AVX-512 and AVX2 stay on through -march=native.
set -euo pipefail

python=${1:?usage: ensure-llama-wheel.sh PYTHON VERSION}
version=${2:?usage: ensure-llama-wheel.sh PYTHON VERSION}

flags=${LLAMA_CMAKE_ARGS-}
if [ -z "${LLAMA_CMAKE_ARGS+set}" ] && [ "$(uname -m)" = "x86_64" ]; then
  no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  flags="-DCMAKE_C_FLAGS='$no_amx' -DCMAKE_CXX_FLAGS='$no_amx'"
fi
pyver=$("$python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
key=$(printf '%s|%s|%s|%s' "$version" "$pyver" "$(uname -m)" "$flags" | sha256sum | cut -c1-16)
cache=${DMOA_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dmoa-edge/wheels}/$key

if ! ls "$cache"/llama_cpp_python-"$version"-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $version ($pyver, $(uname -m)${flags:+, $flags}); about 5 minutes ..." >&2
  mkdir -p "$cache.part"
  CMAKE_ARGS="$flags" "$python" -m pip wheel --quiet --no-deps --no-cache-dir --no-binary llama-cpp-python \
    -w "$cache.part" "llama-cpp-python==$version" >&2
  rm -rf "$cache"
  mv "$cache.part" "$cache"
fi
echo "$cache"
