#!/usr/bin/env bash
# The inputs the fuzz harnesses found (fuzz/regressions/KIND/*), each given to the program
# as a user would: refused with one line and the input error's exit code (1), or the
# usage error's (2) for a configuration. Usage: cli_fuzz_regressions.sh SPINIFEL
set -u
bin="$1"
source "$(dirname "$0")/lib_cli.sh"
reg="$(cd "$(dirname "$0")/../fuzz/regressions" && pwd)"
tmp="$(mktemp -d /tmp/spf_cli_fuzzXXXXXX)"
trap 'rm -rf "$tmp"' EXIT
"$bin" simulate --images 20 --pixels 8 -o "$tmp/d.h5" --emc "$tmp/d.emc" > /dev/null 2>&1

# Files named libhdf5-*: libhdf5 itself mishandles them (an over-read, a leak, an impossible
# allocation that fails: RELIABILITY.md); the sanitizer build then reports what is
# libhdf5's own (tools/asan.supp, tools/lsan-libhdf5.supp) and may warn on its "==" lines.
libhdf5_env=(env "LSAN_OPTIONS=suppressions=$(cd "$(dirname "$0")/.." && pwd)/tools/lsan-libhdf5.supp:print_suppressions=0")
one_message() { [ "$(echo "$LAST_OUT" | grep -vc '^==')" -eq 1 ]; }
for f in "$reg"/hdf5/*; do
  pre=()
  case "$(basename "$f")" in libhdf5-*) pre=("${libhdf5_env[@]}") ;; esac
  check "hdf5 $(basename "$f")" 1 "${pre[@]}" "$bin" reconstruct "$f" -o "$tmp/o"
  expect "hdf5 $(basename "$f"): one line" one_message; [ -n "${VERBOSE:-}" ] && echo "     $LAST_OUT"
done
for f in "$reg"/pdb/*; do
  check "pdb $(basename "$f")" 1 "$bin" simulate --pdb "$f" --assembly --images 2 --pixels 8 -o "$tmp/p.h5"
  expect "pdb $(basename "$f"): one line" one_line; [ -n "${VERBOSE:-}" ] && echo "     $LAST_OUT"
done
for f in "$reg"/ini/*; do
  check "ini $(basename "$f")" 2 "$bin" reconstruct "$tmp/d.h5" -o "$tmp/o" --config "$f"
  expect "ini $(basename "$f"): one line" one_line; [ -n "${VERBOSE:-}" ] && echo "     $LAST_OUT"
done
# Detector files: the regression's first line (its numbers), the simulated detector's pixels.
for f in "$reg"/emc/*; do
  { head -1 "$f" | sed "s/^[0-9]*/64/"; tail -n +2 "$tmp/d.det.dat"; } > "$tmp/det.dat"
  check "emc detector $(basename "$f")" 1 "$bin" reconstruct "$tmp/d.emc" --detector "$tmp/det.dat" -o "$tmp/o"
  expect "emc detector $(basename "$f"): one line" one_line; [ -n "${VERBOSE:-}" ] && echo "     $LAST_OUT"
done
expect "nothing written" test ! -e "$tmp/o" -a ! -e "$tmp/p.h5"
finish
