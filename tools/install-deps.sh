#!/usr/bin/env bash
# Install the Debian 12 packages spinifel needs. Idempotent: installs only what is missing.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libfftw3-dev libopenblas-dev libhdf5-dev
      libopenmpi-dev openmpi-bin libpng-dev hdf5-tools python3-numpy)
# --fuzz: also clang's libFuzzer and OpenMP runtime, for tools/fuzz.sh.
[ "${1:-}" = "--fuzz" ] && pkgs+=(clang libclang-rt-14-dev libomp-14-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
# Another apt-get (an unattended upgrade, a second install) may hold dpkg's lock: wait
# for it, up to 10 minutes, rather than fail at once.
lock=(-o DPkg::Lock::Timeout=600)
$SUDO apt-get "${lock[@]}" update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${lock[@]}" install -y -qq --no-install-recommends "${missing[@]}"
