#!/usr/bin/env bash
# Install the Debian packages that integration tests need (servers the tests start themselves).
# Idempotent: installs nothing when every tool is already on PATH. Needs root (CI runs as root).
set -euo pipefail
# "tool:debian-package" pairs; an issue that adds an integration test adds its pair here.
REQUIRED=("promtool:prometheus" "prometheus:prometheus" "redis-server:redis-server")
needed=()
for pair in "${REQUIRED[@]}"; do
  tool=${pair%%:*}
  pkg=${pair##*:}
  command -v "$tool" >/dev/null 2>&1 || needed+=("$pkg")
done
[ ${#needed[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: root is needed to apt-get install ${needed[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${needed[@]}"
