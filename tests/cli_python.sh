#!/usr/bin/env bash
# The Python binding (python/spinifel) against the library and the command line:
# tests/test_python.py with Debian's python3 and numpy. Usage: cli_python.sh SPINIFEL
# Exit 77 (skip) without /usr/bin/python3 + numpy, or for a sanitizer build (a library
# built with ASan cannot be loaded into a Python that is not).
set -u
bin="$1"
root="$(cd "$(dirname "$0")/.." && pwd)"
lib="$(cd "$(dirname "$bin")" 2>/dev/null && pwd)/libspinifel.so"
py=/usr/bin/python3
if [ ! -x "$py" ] || ! "$py" -c "import numpy" > /dev/null 2>&1; then
  echo "skip: /usr/bin/python3 with numpy is not installed (apt-get install python3-numpy)"
  exit 77
fi
if [ ! -f "$lib" ]; then
  echo "skip: no libspinifel.so beside $bin"
  exit 77
fi
if ldd "$lib" 2>/dev/null | grep -qE 'lib(asan|ubsan)'; then
  echo "skip: $lib is a sanitizer build; Python cannot load it"
  exit 77
fi
start=$(date +%s%N)
# No __pycache__ in the source tree.
SPINIFEL_CLI="$bin" SPINIFEL_LIB="$lib" PYTHONPATH="$root/python${PYTHONPATH:+:$PYTHONPATH}" \
  PYTHONDONTWRITEBYTECODE=1 "$py" "$root/tests/test_python.py"
rc=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
printf 'cli_python.sh: %d.%03d s in all\n' $((ms / 1000)) $((ms % 1000))
exit $rc
