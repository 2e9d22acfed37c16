#!/usr/bin/env bash
# Installs the Debian packages kvbm builds with, when any is missing. Idempotent: quiet when
# everything is already there, one `apt-get update` otherwise.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config
  libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev
  liburing-dev libzmq3-dev cppzmq-dev libsodium-dev libxxhash-dev libcivetweb-dev libucx-dev ucx-utils
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-14 libclang-rt-14-dev
  e2fsprogs util-linux
)
# From PyPI, for the Python module (nanobind, scikit-build-core) and its tests (pytest, numpy).
python_packages=(nanobind scikit-build-core pytest numpy)
sudo_cmd=""
[ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
python3 -m pip --version >/dev/null 2>&1 || packages+=(python3-pip python3-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -ne 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! python3 -c "import nanobind, scikit_build_core, pytest, numpy" 2>/dev/null; then
  echo "setup: installing ${python_packages[*]} for $(command -v python3)"
  # Debian's own Python refuses packages outside its package manager unless told otherwise.
  # Without them the build leaves the Python module and its tests out (CMake says so).
  python3 -m pip install -q --break-system-packages "${python_packages[@]}" ||
    echo "setup: pip could not install ${python_packages[*]}: the Python module will not be built"
fi
