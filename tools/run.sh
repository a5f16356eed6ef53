#!/usr/bin/env bash
# The main job: install dependencies, build, and run spinifel on its built-in default.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/tools/install-deps.sh"
bash "$root/tools/build.sh" "$root/build" > /dev/null
"$root/build/spinifel" info
"$root/build/spinifel" selfcheck
