#!/usr/bin/env bash
# Run the whole test suite: tools/test.sh            (optimised build, in build/)
#                           tools/test.sh --sanitize (ASan + UBSan build, in build-sanitize/)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ "${1:-}" = "--sanitize" ]; then
  dir="$root/build-sanitize"
  # Without MPI: OpenMPI's dlopened components keep memory LeakSanitizer cannot attribute,
  # and this build then checks the one-process path the program has without MPI.
  bash "$root/tools/build.sh" "$dir" -DSPINIFEL_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPINIFEL_MPI=OFF
  # An impossible allocation returns NULL as it does outside the sanitizer (libhdf5 asks
  # for sizes read from crafted headers, then fails the open: fuzz/regressions/hdf5).
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:allocator_may_return_null=1:suppressions=$root/tools/asan.supp"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  export SPINIFEL_TEST_SCALE=small   # the sanitizer build is slower: tests shrink their big cases
else
  dir="$root/build"
  bash "$root/tools/build.sh" "$dir"
fi
cd "$dir"
# OpenMP threads asleep at barriers, as the program sets for itself: the test programs
# share a busy machine, where spinning threads slow everything (BENCHMARKS.md).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
# One test at a time: each test uses both cores (OpenMP), and two at once thrash.
ctest --output-on-failure
