#!/usr/bin/env bash
# Installs the Debian packages tollgate needs: `--build` for building and
# running it, `--test` for the test suites as well. Skips apt when everything
# is already there.
set -euo pipefail

build_pkgs=(g++ cmake ninja-build pkg-config curl libboost1.81-dev libssl-dev libsqlite3-dev
            libsimdjson-dev libspdlog-dev libfmt-dev libcli11-dev libtomlplusplus-dev)
test_pkgs=(libgtest-dev libgmock-dev librapidcheck-dev clang-14 libclang-rt-14-dev faketime
           postgresql nodejs)

pkgs=("${build_pkgs[@]}")
if [[ "${1:-}" == "--test" ]]; then pkgs+=("${test_pkgs[@]}"); fi

missing=()
for p in "${pkgs[@]}"; do
  # nodejs may come from outside Debian's packages; a working node is enough.
  if [[ "$p" == nodejs ]] && command -v node >/dev/null 2>&1; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
