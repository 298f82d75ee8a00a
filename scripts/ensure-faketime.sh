#!/usr/bin/env bash
# Installs libfaketime (the faketime package) with apt-get when it is missing; does nothing
# otherwise. The clock-step fault test runs an agent under it.
set -euo pipefail

if [ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ] || compgen -G "/usr/lib/*/faketime/libfaketimeMT.so.1" >/dev/null; then
  exit 0
fi
# shellcheck source=scripts/apt-root.sh
. "$(dirname "$0")/apt-root.sh"
apt_root "faketime"
echo "installing faketime with apt-get ..." >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq faketime >/dev/null
