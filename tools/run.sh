#!/usr/bin/env bash
# The main job: install dependencies, build, and run spinifel on its built-in default.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/tools/install-deps.sh"
bash "$root/tools/build.sh" "$root/build" > /dev/null
"$root/build/spinifel" info
"$root/build/spinifel" selfcheck
mkdir -p "$root/out"
"$root/build/spinifel" simulate --images 2000 --pixels 32 -o "$root/out/phantom.h5"
