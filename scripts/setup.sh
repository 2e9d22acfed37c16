#!/usr/bin/env bash
# Installs the Debian packages kvbm builds with, when any is missing. Idempotent: quiet when
# everything is already there, one `apt-get update` otherwise.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config
  libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev
  liburing-dev libzmq3-dev cppzmq-dev libxxhash-dev libcivetweb-dev libucx-dev ucx-utils
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-14 libclang-rt-14-dev
  e2fsprogs util-linux
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "setup: installing ${missing[*]}"
sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo_cmd apt-get update -qq
$sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
