#!/usr/bin/env bash
# Installs RabbitMQ (the clustered broker the hub topology's tests start) with apt-get when it is
# missing; does nothing otherwise. The package's own service is never started: the tests run their
# nodes themselves, on loopback addresses, and a packaged service would listen on every interface.
set -euo pipefail

if [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] && command -v epmd >/dev/null 2>&1; then
  exit 0
fi
# shellcheck source=scripts/apt-root.sh
. "$(dirname "$0")/apt-root.sh"
apt_root "rabbitmq-server"
# policy-rc.d exit status 101 = "action forbidden": the package installs without starting its service.
policy=/usr/sbin/policy-rc.d
saved=""
if [ -e "$policy" ]; then saved=$(mktemp); $SUDO cp -p "$policy" "$saved"; fi
restore() { if [ -n "$saved" ]; then $SUDO cp -p "$saved" "$policy"; rm -f "$saved"; else $SUDO rm -f "$policy"; fi; }
trap restore EXIT
printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
$SUDO chmod 755 "$policy"
echo "installing rabbitmq-server with apt-get (its service is not started) ..." >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends rabbitmq-server >/dev/null
