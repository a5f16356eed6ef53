#!/usr/bin/env bash
# spinifel watch killed with SIGKILL at random moments and started again, until it has
# ingested every burst; compared byte for byte with an uninterrupted watch (density.mrc,
# results.h5, fsc_halves.csv, the state) and checked for temporaries (RELIABILITY.md).
# usage: bench/watch_kill_resume.sh [TRIALS] [BUILD_DIR]      (defaults: 5, build)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
trials="${1:-5}"
bin="$(cd "${2:-$root/build}" && pwd)/spinifel"
[ -x "$bin" ] || { echo "watch_kill_resume.sh: no $bin" >&2; exit 2; }
work="$(mktemp -d /tmp/spinifel-watch-kill.XXXXXX)"
trap 'rm -rf "$work"' EXIT
echo "# bench/watch_kill_resume.sh $trials: $("$bin" --version), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin" simulate --bursts 4 --images 80 --pixels 16 --distance 0.03 --no-noise -o "$work/in" --quiet > /dev/null 2>&1
args=(--M 13 --refs 400 --refs-start 0 --soft-k 8 --soft-gens 1 --phase-cycles 3 --threads 2 --generations 3
      --refine-generations 2 --poll 0.05 --align-rotations 500 --quiet --stop-after-idle 0.3)
mkdir -p "$work/ref"
t0=$(date +%s.%N)
(cd "$work/ref" && "$bin" watch ../in -o out "${args[@]}" > /dev/null 2>&1)
t1=$(date +%s.%N)
echo "uninterrupted: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
same=0 kills=0
for t in $(seq 1 "$trials"); do
  d="$work/t$t"
  mkdir -p "$d"
  while :; do
    (cd "$d" && exec "$bin" watch ../in -o out "${args[@]}" > /dev/null 2>&1) &
    pid=$!
    sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", 0.2 + 2.0 * r / 32768 }')"
    if kill -9 "$pid" 2>/dev/null; then
      kills=$((kills + 1))
      wait "$pid" 2>/dev/null || true
    else
      wait "$pid" 2>/dev/null || true
      break # it finished before the kill
    fi
  done
  ok=1
  for f in density.mrc results.h5 fsc_halves.csv state/watch.state state/half1.00004.h5 state/half2.00004.h5; do
    cmp -s "$work/ref/out/$f" "$d/out/$f" || { ok=0; echo "trial $t: $f differs"; }
  done
  [ "$(wc -l < "$d/out/feedback.jsonl")" -eq 4 ] || { ok=0; echo "trial $t: $(wc -l < "$d/out/feedback.jsonl") feedback lines"; }
  if (ls "$d/out"; ls "$d/out/state") | grep -q tmp; then ok=0; echo "trial $t: a temporary left"; fi
  same=$((same + ok))
done
echo "trials $trials, kills $kills, the same bytes and no temporary: $same of $trials"
