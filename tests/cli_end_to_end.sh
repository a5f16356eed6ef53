#!/usr/bin/env bash
# End to end: `spinifel demo` simulates noise-free 32 x 32 images of the built-in phantom
# and reconstructs them from random orientations; the median orientation error of the
# final generation must be small. Usage: cli_end_to_end.sh SPINIFEL
# SPINIFEL_TEST_SCALE=small (sanitizer builds): fewer images and generations, and only a
# clear improvement on random orientations (~100 degrees) is required.
set -u
bin="$1"
tmp="$(mktemp -d /tmp/spf_e2eXXXXXX)"
trap 'rm -rf "$tmp"' EXIT
if [ "${SPINIFEL_TEST_SCALE:-}" = small ]; then
  limit=60
  "$bin" simulate --images 600 --pixels 32 --distance 0.03 --no-noise -o "$tmp/phantom.h5" > /dev/null 2>&1
  out="$("$bin" reconstruct "$tmp/phantom.h5" -o "$tmp/r" --generations 8 --refs 4000 --refs-gens 7 \
         --soft-gens 4 --threads 2 2>&1)"; rc=$?
else
  limit=10
  out="$("$bin" demo -o "$tmp" --threads 2 2>&1)"; rc=$?
fi
echo "$out" | tail -3
if [ "$rc" -ne 0 ]; then echo "FAIL the run exited $rc"; exit 1; fi
med="$(echo "$out" | sed -n 's/^orientation error: median \([0-9.]*\) deg.*/\1/p')"
if [ -z "$med" ]; then echo "FAIL no orientation error reported"; exit 1; fi
if awk -v m="$med" -v l="$limit" 'BEGIN { exit !(m < l) }'; then
  echo "ok   median orientation error $med deg < $limit deg"
else
  echo "FAIL median orientation error $med deg, expected < $limit deg"; exit 1
fi
