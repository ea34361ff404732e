#!/usr/bin/env bash
# Installs libvitint's build dependencies from Debian 12's archive; with
# --tests also what only the tests use: python3 (bench/compare.py's checks)
# and qemu-user (the library on emulated CPUs without AVX2 / AVX-512).
set -euo pipefail
packages=(build-essential cmake pkg-config git zlib1g-dev libjpeg-dev libdnnl-dev libeigen3-dev
          libbenchmark-dev doctest-dev libstb-dev nlohmann-json3-dev)
case "${1:-}" in
  "") ;;
  --tests) packages+=(python3 qemu-user) ;;
  *) echo "usage: install-deps.sh [--tests]" >&2; exit 2 ;;
esac
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
echo "installing: ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
