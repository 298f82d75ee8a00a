#!/usr/bin/env bash
# Installs mosquitto and its clients with apt-get when they are missing; does nothing otherwise.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

if have mosquitto && have mosquitto_pub; then
  exit 0
fi
# shellcheck source=scripts/apt-root.sh
. "$(dirname "$0")/apt-root.sh"
apt_root "mosquitto mosquitto-clients"
echo "installing mosquitto and mosquitto-clients with apt-get ..." >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mosquitto mosquitto-clients >/dev/null
