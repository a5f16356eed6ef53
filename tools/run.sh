#!/usr/bin/env bash
# The main job: install dependencies, build, and run spinifel on its built-in default.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/tools/install-deps.sh"
bash "$root/tools/build.sh" "$root/build" > /dev/null
"$root/build/spinifel" info
"$root/build/spinifel" selfcheck
# The demo: simulate 2,000 images of the built-in phantom, reconstruct them from random
# orientations (a few minutes on 2 cores) into out/demo.
mkdir -p "$root/out"
"$root/build/spinifel" demo -o "$root/out/demo"
