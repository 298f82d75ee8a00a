#!/usr/bin/env bash
# Installs mosquitto and its clients with apt-get when they are missing; does nothing otherwise.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

if have mosquitto && have mosquitto_pub; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "mosquitto is missing and this system has no apt-get: install mosquitto and mosquitto-clients yourself" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "mosquitto is missing; install it with: sudo apt-get install -y mosquitto mosquitto-clients" >&2
  exit 1
fi
echo "installing mosquitto and mosquitto-clients with apt-get ..." >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mosquitto mosquitto-clients >/dev/null
