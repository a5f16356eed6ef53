#!/usr/bin/env bash
# Does every start converge? One dataset reconstructed from random orientations with the
# defaults and only `reconstruct --seed` changed; per seed the figures against the truth
# (issue 17's benchmark, BENCHMARKS.md "Every start converges").
#
# usage: bench/seeds.sh CASE [N_SEEDS] [BUILD_DIR]     (N_SEEDS default 10, BUILD_DIR build)
#   demo    the demo's data: 2,000 noise-free 32 x 32 images of the built-in phantom
#   2cex    the same geometry for 2cex (needs $SPINIFEL_PDB, default ../shared/data/2cex.pdb)
#   noisy   the phantom with Poisson noise at 4,400 photons per image (the brightest pixel
#           ~150), a beam stop of 2 pixels' radius masked
# Per seed: generations, seconds, median and 90th-percentile orientation error, images
# more than 20 deg off and how many of them are among as many of lowest confidence and
# among the lowest 15%, the confidence's rank correlation with the error (`spinifel
# orientations`), the density's correlation and FSC 0.5 against the truth (`spinifel
# fsc`); then how many seeds meet issue 17's targets: 90th percentile below twice the
# final grid's covering radius (`spinifel info --grid`), FSC 0.5 within 1.1 x Nyquist.
# Runs one seed at a time with every thread (SPINIFEL_THREADS to change). Outputs go to a
# temporary directory, removed at the end (SPINIFEL_BENCH_KEEP=1 keeps it).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
case="${1:-}"
seeds="${2:-10}"
build="${3:-$root/build}"
bin="$build/spinifel"
case "$case" in
  demo|2cex|noisy) ;;
  *) echo "seeds.sh: usage: bench/seeds.sh demo|2cex|noisy [N_SEEDS] [BUILD_DIR]" >&2; exit 2 ;;
esac
[[ "$seeds" =~ ^[1-9][0-9]*$ ]] || { echo "seeds.sh: N_SEEDS must be a positive integer" >&2; exit 2; }
[ -x "$bin" ] || { echo "seeds.sh: no $bin (build first: bash tools/build.sh)" >&2; exit 2; }
threads="${SPINIFEL_THREADS:-0}"
out="$(mktemp -d /tmp/spinifel-seeds.XXXXXX)"
[ "${SPINIFEL_BENCH_KEEP:-0}" = 1 ] && echo "keeping $out" || trap 'rm -rf "$out"' EXIT

geometry=(--images 2000 --pixels 32 --distance 0.03)
reference=(--phantom)
case "$case" in
  demo) sim=("${geometry[@]}" --no-noise) ;;
  2cex)
    pdb="${SPINIFEL_PDB:-$root/../shared/data/2cex.pdb}"
    [ -r "$pdb" ] || { echo "seeds.sh: no PDB file $pdb (set SPINIFEL_PDB)" >&2; exit 2; }
    sim=("${geometry[@]}" --no-noise --pdb "$pdb")
    reference=(--pdb "$pdb") ;;
  noisy) sim=("${geometry[@]}" --fluence 1e15 --beamstop 0.013) ;;
esac
echo "case $case: simulate ${sim[*]}; reconstruct --seed 1..$seeds, defaults, --threads $threads; $(date -u '+%F %H:%M') UTC, load $(cut -d' ' -f1 /proc/loadavg)"
"$bin" simulate "${sim[@]}" -o "$out/data.h5" --quiet > /dev/null

printf '%-4s %5s %7s %8s %8s %5s %7s %7s %6s %6s %8s %8s\n' seed gens seconds median p90 off caught low15% rank_r corr fsc05_A nyq_A
met_p90=0 met_fsc=0 worst_p90=0 worst_fsc=0
for s in $(seq 1 "$seeds"); do
  run="$out/s$s"
  t0=$(date +%s.%N)
  "$bin" reconstruct "$out/data.h5" -o "$run" --seed "$s" --threads "$threads" --quiet 1 > "$run.log" 2>&1 ||
    { echo "seed $s: reconstruct failed:"; tail -3 "$run.log"; exit 1; }
  t1=$(date +%s.%N)
  gens=$(sed -n 's/.* in \([0-9]*\) generations.*/\1/p' "$run.log")
  refs=$(sed -n 's/^references: \([0-9]*\) final.*/\1/p' "$run.log" | tail -1)
  "$bin" orientations "$run/results.h5" "$out/data.h5" > "$run.orient"
  med=$(sed -n 's/.*median \([0-9.]*\) deg, 90th percentile \([0-9.]*\) deg/\1/p' "$run.orient")
  p90=$(sed -n 's/.*median \([0-9.]*\) deg, 90th percentile \([0-9.]*\) deg/\2/p' "$run.orient")
  rank_r=$(sed -n 's/.*with the error \([-0-9.na]*\) .*/\1/p' "$run.orient")
  off=$(sed -n 's/.*; \([0-9]*\) images more than.*/\1/p' "$run.orient")
  caught=$(sed -n 's/.* off, \([0-9]*\) of them.*/\1/p' "$run.orient")
  low15=$(sed -n 's/.*, \([0-9]*\) among the lowest 15%.*/\1/p' "$run.orient")
  "$bin" fsc "$run/density.mrc" "${reference[@]}" > "$run.fsc"
  corr=$(sed -n 's/.*correlation \([-0-9.]*\).*/\1/p' "$run.fsc" | head -1)
  fsc=$(sed -n 's/^FSC 0\.5 at \([0-9.]*\) A.*/\1/p' "$run.fsc")
  nyq=$(sed -n 's/.*Nyquist \([0-9.]*\) A.*/\1/p' "$run.fsc" | head -1)
  cover=$("$bin" info --grid "${refs:-16177}" | sed -n 's/.*covering radius \([0-9.]*\) deg.*/\1/p')
  printf '%-4s %5s %7.1f %8s %8s %5s %7s %7s %6s %6s %8s %8s\n' "$s" "$gens" \
    "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" "$med" "$p90" "$off" "$caught" "$low15" "$rank_r" "$corr" "$fsc" "$nyq"
  awk -v p="$p90" -v c="$cover" 'BEGIN { exit !(p < 2 * c) }' && met_p90=$((met_p90 + 1))
  awk -v f="$fsc" -v n="$nyq" 'BEGIN { exit !(f <= 1.1 * n) }' && met_fsc=$((met_fsc + 1))
  worst_p90=$(awk -v a="$worst_p90" -v b="$p90" 'BEGIN { print (b > a ? b : a) }')
  worst_fsc=$(awk -v a="$worst_fsc" -v b="$fsc" 'BEGIN { print (b > a ? b : a) }')
done
echo "90th percentile below twice the covering radius (2 x ${cover} deg): $met_p90 of $seeds seeds (worst $worst_p90 deg);" \
  "FSC 0.5 within 1.1 x Nyquist: $met_fsc of $seeds (worst $worst_fsc A)"
