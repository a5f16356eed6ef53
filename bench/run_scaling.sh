#!/usr/bin/env bash
# Weak and strong scaling of an M-TIP generation over MPI ranks x threads, for the time
# model in BENCHMARKS.md. Simulates 64 x 64 phantom images once, then runs generations
# 0 and 1 of `spinifel reconstruct` (a fixed grid of R references from generation 1,
# default soft assignment) and prints generation 1's steps from log.jsonl (match:
# the matching itself; ring: passing image blocks between ranks; recheck%: the pairs
# measured again in a fixed order, of images x references; reduce: the merge's
# exchange and sums):
#   strong: N images on 1 rank x 1 thread, 1 x 2, 2 x 1
#   weak:   N/2 images per rank on 1 x 1 and 2 x 1
# Usage: bench/run_scaling.sh [BUILD_DIR] [WORKDIR]   (env: N, R, M, PIXELS)
# OPENBLAS_CORETYPE is left as the environment sets it (printed).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$(cd "${1:-$root/build}" && pwd)/spinifel"
work="${2:-$(mktemp -d)}"
N="${N:-4000}" R="${R:-10000}" M="${M:-41}" PIXELS="${PIXELS:-64}"
mkdir -p "$work"
echo "# $(date -u +%F) $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
  "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
echo "# $N images of ${PIXELS}x${PIXELS}, M = $M, $R references, generation 1 (soft assignment)"
data="$work/scaling_${N}_${PIXELS}.h5"
[ -f "$data" ] || "$bin" simulate --images "$N" --pixels "$PIXELS" --distance 0.06 --no-noise -o "$data" > /dev/null

field() { sed -n 2p "$1" | grep -o "\"$2\":[-0-9.e+]*" | cut -d: -f2; }

printf '%-6s %5s %7s %6s | %7s %7s %7s %8s %7s %7s %7s | %7s %9s\n' scaling ranks threads images \
  slice match ring recheck% merge reduce phase gen1_s peak_MiB
run() { # kind ranks threads images
  local out="$work/run_$1_$2x$3_$4" launch=()
  rm -rf "$out"
  [ "$2" -gt 1 ] && launch=(mpirun --oversubscribe --allow-run-as-root --bind-to none -np "$2")
  /usr/bin/time -f %M -o "$out.mem" "${launch[@]}" "$bin" reconstruct "$data" -o "$out" --images "$4" \
    --M "$M" --refs "$R" --refs-start 0 --generations 2 --stop-fraction 0 --threads "$3" > "$out.txt" 2>&1 ||
    { cat "$out.txt"; exit 1; }
  local log="$out/log.jsonl" sm sl
  sm=$(field "$log" t_slice_match) sl=$(field "$log" t_slice)
  awk -v k="$1" -v p="$2" -v t="$3" -v n="$4" -v sl="$sl" -v sm="$sm" -v mg="$(field "$log" t_merge)" \
    -v rd="$(field "$log" t_reduce)" -v rg="$(field "$log" t_ring)" -v rk="$(field "$log" rechecks)" -v R="$R" -v ph="$(field "$log" t_phase)" -v mem="$(cat "$out.mem")" \
    'BEGIN { printf "%-6s %5d %7d %6d | %7.2f %7.2f %7.3f %8.2f %7.2f %7.3f %7.2f | %7.2f %9.0f\n",
             k, p, t, n, sl, sm - sl - rg, rg, 100 * rk / (n * R), mg, rd, ph, sm + mg + ph, mem / 1024 }'
}
half=$((N / 2))
run strong 1 1 "$N"
run strong 1 2 "$N"
run strong 2 1 "$N"
run weak 1 1 "$half"
run weak 2 1 "$N"
echo "# peak_MiB: largest resident set of one process (mpirun: of the launcher's children)"
