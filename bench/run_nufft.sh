#!/usr/bin/env bash
# The NUFFT benchmark matrix of BENCHMARKS.md: types 1 and 2, 64^3 and 128^3 modes,
# 1e6 and 1e7 uniform random points in [-pi, pi)^3, double at 1e-6 and float at 1e-3,
# 1 and 2 threads. Usage: bench/run_nufft.sh [BUILD_DIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${1:-$root/build}/nufft_bench"
echo "# $(date -u +%F) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for n in 64 128; do
  for m in 1e6 1e7; do
    for prec in "double 1e-6" "float 1e-3"; do
      set -- $prec
      for type in 1 2; do
        for threads in 1 2; do
          cmd="$bin --type $type --n $n --m $m --prec $1 --tol $2 --threads $threads --reps 3"
          echo "\$ ${cmd#$root/}"
          $cmd
        done
      done
    done
  done
done
