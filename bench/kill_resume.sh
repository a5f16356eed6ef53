#!/usr/bin/env bash
# Kill and resume: a small reconstruction killed with SIGKILL at random moments, resumed
# (and killed again) until it finishes, must end with the uninterrupted run's bytes
# (density.mrc, results.h5, checkpoint.h5) and leave no temporary file.
# usage: bench/kill_resume.sh [TRIALS] [BUILD_DIR]      (default 10 trials, build/)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
trials="${1:-10}"
bin="${2:-$root/build}/spinifel"
[ -x "$bin" ] || { echo "kill_resume.sh: no $bin" >&2; exit 2; }
dir="$(mktemp -d /tmp/spinifel-kill.XXXXXX)"
trap 'rm -rf "$dir"' EXIT
small=(--M 15 --refs 300 --refs-start 0 --soft-k 8 --soft-gens 2 --phase-cycles 2 --generations 8 --threads 2)
"$bin" simulate --images 300 --pixels 16 --distance 0.03 --no-noise -o "$dir/d.h5" > /dev/null 2>&1
t0="$(date +%s.%N)"
"$bin" reconstruct "$dir/d.h5" -o "$dir/run" "${small[@]}" > /dev/null 2>&1
t1="$(date +%s.%N)"
mv "$dir/run" "$dir/ref"
full="$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')"
echo "# kill_resume.sh: $trials trials, $(date -u '+%F %T') UTC; an uninterrupted run takes ${full} s"
ok=0 kills=0
for ((t = 1; t <= trials; t++)); do
  rm -rf "$dir/run"
  n=0
  # Start, then kill at a random moment within the run's length; resume until it ends.
  cmd=("$bin" reconstruct "$dir/d.h5" -o "$dir/run" "${small[@]}")
  while :; do
    "${cmd[@]}" > /dev/null 2>&1 &
    pid=$!
    delay="$(awk -v f="$full" -v r="$RANDOM" 'BEGIN { printf "%.2f", f * r / 32767 }')"
    sleep "$delay"
    if kill -9 "$pid" 2> /dev/null; then
      wait "$pid" 2> /dev/null || true
      n=$((n + 1))
      # A kill before the first checkpoint leaves nothing to resume: start again.
      if [ -f "$dir/run/checkpoint.h5" ]; then cmd=("$bin" reconstruct --resume "$dir/run" --threads 2); fi
    else
      wait "$pid" || { echo "trial $t: the run failed"; break; }
      break
    fi
  done
  kills=$((kills + n))
  same=1
  for f in density.mrc results.h5 checkpoint.h5; do cmp -s "$dir/ref/$f" "$dir/run/$f" || same=0; done
  tmpf="$(ls "$dir/run" | grep -c '\.tmp\.' || true)"
  if [ "$same" = 1 ] && [ "$tmpf" = 0 ]; then ok=$((ok + 1)); r="the same bytes"; else r="DIFFERENT (or $tmpf temporaries left)"; fi
  echo "trial $t: $n kills, $r"
done
echo "$ok of $trials trials ($kills kills in all) ended on the uninterrupted run's bytes with no temporary left"
[ "$ok" = "$trials" ]
