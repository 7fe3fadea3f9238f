#!/usr/bin/env bash
# Installs the Debian packages named as arguments that are missing (the load
# generators and peers the benchmarks run: wrk, nginx-light); quiet when all
# are there. usage: bench/install-tools.sh PACKAGE...
set -euo pipefail
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
