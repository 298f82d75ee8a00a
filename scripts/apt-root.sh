# Sourced by the ensure-*.sh scripts once they know packages are missing: checks that apt-get
# exists and sets SUDO to what runs it as root, or says how to install by hand and exits.
#   apt_root "PACKAGE ..."
apt_root() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "$1 missing and this system has no apt-get: install $1 yourself" >&2
    exit 1
  fi
  if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
  elif sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "$1 missing; install with: sudo apt-get install -y $1" >&2
    exit 1
  fi
}
