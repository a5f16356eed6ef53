#!/usr/bin/env bash
# A disk that fills up in the middle of a write (tests/faults/enospc.c, preloaded): every
# writer ends with a clear message and exit 1, never a crash (libhdf5 1.10 used to segfault
# at exit after the failed close), and leaves no output or temporary file behind.
# Usage: cli_disk_full.sh SPINIFEL (SPINIFEL_ENOSPC_LIB: the preload library, from CTest)
set -u
bin="$1"
source "$(dirname "$0")/lib_cli.sh"
lib="${SPINIFEL_ENOSPC_LIB:-}"
if [ -z "$lib" ] || [ ! -f "$lib" ]; then echo "skip: no SPINIFEL_ENOSPC_LIB"; exit 77; fi
tmp="$(mktemp -d /tmp/spf_cli_fullXXXXXX)"
trap 'rm -rf "$tmp"' EXIT
# The sanitizer build's runtime must come first among the preloads; the fault library does not need it.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
# What libhdf5 holds after its failed close is its own (tools/lsan-libhdf5.supp).
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$(cd "$(dirname "$0")/.." && pwd)/tools/lsan-libhdf5.supp:print_suppressions=0"
full() { SPF_FAULT_BYTES="$1" LD_PRELOAD="$lib" "${@:2}"; }
last_says_full() { echo "$LAST_OUT" | tail -1 | grep -q "disk full\|No space left\|cannot write\|could not finish\|cannot finish\|write failed"; }
no_temporaries() { ! ls "$@" 2>/dev/null | grep -q '\.tmp'; }

"$bin" simulate --images 100 --pixels 16 --distance 0.03 --no-noise -o "$tmp/d.h5" > /dev/null 2>&1 || exit 1
for bytes in 1000 20000 200000; do
  mkdir -p "$tmp/s$bytes"
  check "simulate, the disk full after $bytes bytes" 1 full "$bytes" "$bin" simulate --images 300 --pixels 32 \
    -o "$tmp/s$bytes/x.h5" --emc "$tmp/s$bytes/x.emc" --quiet
  expect "simulate, $bytes bytes: one line that says why" bash -c "[ \$(echo \"\$0\" | wc -l) -eq 1 ]" "$LAST_OUT"
  expect "simulate, $bytes bytes: the message" last_says_full
  expect "simulate, $bytes bytes: no dataset, no temporary" bash -c "[ ! -e '$tmp/s$bytes/x.h5' ] && ! ls '$tmp/s$bytes' | grep -q tmp"
done
small=(--M 15 --refs 300 --refs-start 0 --soft-k 8 --soft-gens 1 --phase-cycles 2 --threads 2 --generations 2)
for bytes in 3000 150000 345000 362000 390000; do
  check "reconstruct, the disk full after $bytes bytes" 1 full "$bytes" "$bin" reconstruct "$tmp/d.h5" \
    -o "$tmp/r$bytes" "${small[@]}"
  expect "reconstruct, $bytes bytes: the last line says why" last_says_full
  expect "reconstruct, $bytes bytes: no temporary left" no_temporaries "$tmp/r$bytes"
done
# The reference: the same run with room to write.
check "reconstruct with room" 0 "$bin" reconstruct "$tmp/d.h5" -o "$tmp/ok" "${small[@]}"
finish
