#!/usr/bin/env bash
# Fuzz the input readers with libFuzzer (clang; AddressSanitizer + UndefinedBehaviorSanitizer).
#   tools/fuzz.sh [SECONDS] [HARNESS ...]    each harness for SECONDS (default 20), all by default
#   tools/fuzz.sh --runs N [HARNESS ...]      each for N executions instead
# Harnesses (fuzz/fuzz_*.c): ini pdb mrc hdf5 emc; each starts from its seeds and from
# the inputs earlier runs found (fuzz/regressions/NAME, also run by tests/cli_fuzz_regressions.sh). The corpus each one grows is kept in
# build-fuzz/fuzz-work/corpus/NAME and reused by the next run; a finding fails the script
# and its input is saved as build-fuzz/fuzz-work/artifacts/NAME-crash-*. Needs clang,
# libclang-rt-14-dev and libomp-14-dev (tools/install-deps.sh --fuzz).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
limit=(-max_total_time=20)
if [ "${1:-}" = "--runs" ]; then
  limit=(-runs="$2"); shift 2
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then
  limit=(-max_total_time="$1"); shift
fi
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(ini pdb mrc hdf5 emc)
dir="$root/build-fuzz"
CC=clang cmake -S "$root" -B "$dir" -DSPINIFEL_FUZZ=ON -DSPINIFEL_MPI=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build "$dir" -j2 > "$dir/build.log" 2>&1 || { tail -30 "$dir/build.log"; exit 1; }

# Seeds: the committed text files, and files the program itself writes.
work="$dir/fuzz-work"
seeds="$work/seeds"
rm -rf "$seeds"
mkdir -p "$seeds"/{ini,pdb,mrc,hdf5,emc} "$work/artifacts"
cp "$root"/fuzz/corpus/ini/* "$seeds/ini/"
cp "$root"/fuzz/corpus/pdb/* "$seeds/pdb/"
"$dir/spinifel" simulate --images 3 --pixels 8 --seed 1 -o "$seeds/hdf5/d.h5" --emc "$seeds/emc/d.emc" --quiet > /dev/null
mv "$seeds/hdf5/d.truth.mrc" "$seeds/mrc/"
mv "$seeds/emc/d.det.dat" "$seeds/emc/det.dat" 2>/dev/null || true

# An impossible allocation returns NULL, as it does outside the sanitizer (libhdf5 itself
# asks for sizes it read from crafted headers, and then fails the open); the harnesses check
# that no reader fails for want of memory on a small input, and libFuzzer still flags any
# allocation it sees over -rss_limit_mb.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:allocator_may_return_null=1:suppressions=$root/tools/asan.supp"
export LSAN_OPTIONS="suppressions=$root/tools/lsan-libhdf5.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export OMP_NUM_THREADS=1
status=0
printf '%-6s %12s %10s %8s %s\n' harness executions exec/s corpus result
for n in "${names[@]}"; do
  bin="$dir/fuzz_$n"
  [ -x "$bin" ] || { echo "fuzz.sh: no harness '$n' (have: ini pdb mrc hdf5 emc)" >&2; exit 2; }
  mkdir -p "$work/corpus/$n"
  log="$work/$n.log"
  found=()
  [ -d "$root/fuzz/regressions/$n" ] && found=("$root/fuzz/regressions/$n")
  # stderr of the readers (one line per refused input) is closed; libFuzzer's own output
  # and any sanitizer report still reach the log.
  if "$bin" "${limit[@]}" -seed=1 -timeout=20 -rss_limit_mb=4096 -close_fd_mask=2 -print_final_stats=1 \
       -artifact_prefix="$work/artifacts/$n-" "$work/corpus/$n" "$seeds/$n" "${found[@]}" > "$log" 2>&1; then
    result=ok
  else
    result="FAILED (see $log)"
    status=1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  secs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  size=$(ls "$work/corpus/$n" | wc -l)
  printf '%-6s %12s %10s %8s %s\n' "$n" "${runs:-?}" "${secs:-?}" "$size" "$result"
  if [ "$result" != ok ]; then grep -A30 -m1 "ERROR\|property failed\|==.*==" "$log" | head -40; fi
done
exit $status
