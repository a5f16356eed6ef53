#!/usr/bin/env bash
# Whole-run benchmarks: one command per case, printing the settings, the wall time, the
# step split and the peak memory (figures for BENCHMARKS.md).
#
# usage: bench/whole_run.sh CASE [BUILD_DIR]      (BUILD_DIR default: build)
#   demo    spinifel demo: 2,000 noise-free 32 x 32 images of the built-in phantom,
#           reconstructed from random orientations with the defaults; also checks
#           the figures (median error < 10 deg, correlation > 0.8): exit 1 otherwise
#   photon  2cex, 5,000 photon-limited frames of 101 x 101 pixels (about 260 photons,
#           beam stop), reconstructed from random orientations with the defaults
#           (needs a PDB file: $SPINIFEL_PDB, default ../shared/data/2cex.pdb)
#   paper   one paper-shaped generation (bench/mtip_bench): M = 81, 128 x 128 pixels,
#           10,000 images, 100,000 references
# Outputs go to a temporary directory, removed at the end (SPINIFEL_BENCH_KEEP=1 keeps it).
# Leave OPENBLAS_CORETYPE as the machine sets it, or unset it in this command
# (env -u OPENBLAS_CORETYPE bench/whole_run.sh ...) and say so with the figures.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
case="${1:-}"
build="${2:-$root/build}"
case "$case" in
  demo|photon|paper) ;;
  *) echo "whole_run.sh: usage: bench/whole_run.sh demo|photon|paper [BUILD_DIR]" >&2; exit 2 ;;
esac
bin="$build/spinifel"
[ -x "$bin" ] || { echo "whole_run.sh: no $bin (build first: bash tools/build.sh)" >&2; exit 2; }
out="$(mktemp -d /tmp/spinifel-bench.XXXXXX)"
[ "${SPINIFEL_BENCH_KEEP:-0}" = 1 ] || trap 'rm -rf "$out"' EXIT

# Run a command under /usr/bin/time when the machine has it (Debian package "time"),
# for the peak resident memory.
timed() {
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f "%e %M" -o "$out/time.txt" "$@"
  else
    local t0 t1
    t0="$(date +%s.%N)"
    "$@"
    t1="$(date +%s.%N)"
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f nan\n", b - a }' > "$out/time.txt"
  fi
}
report_time() {
  read -r wall kib < "$out/time.txt"
  if [ "$kib" = nan ]; then
    echo "$1: wall $wall s, peak memory not measured (no /usr/bin/time: apt-get install time)"
  else
    awk -v w="$wall" -v k="$kib" -v what="$1" 'BEGIN { printf "%s: wall %s s, peak memory %.0f MiB\n", what, w, k / 1024 }'
  fi
}

# The step split of a run: seconds summed over generations from its log.jsonl.
step_split() {
  awk '
    function get(key,   m) { if (match($0, "\"" key "\":[-0-9.eE+]+")) { m = substr($0, RSTART, RLENGTH); sub(/.*:/, "", m); return m + 0 } return 0 }
    { n++; slice += get("t_slice"); sm += get("t_slice_match"); merge += get("t_merge"); phase += get("t_phase");
      lik += get("t_likelihood"); views += get("t_views"); pts += get("t_merge_points") }
    END {
      printf "generations %d: slicing %.1f s, orientation step without slicing %.1f s", n, slice, sm - slice
      if (lik > 0) printf " (likelihood %.1f, views %.1f, the views'\'' type-1 sums into the merger %.1f)", lik, views, pts
      printf ", merging %.1f s, phasing %.1f s; per generation %.2f s\n", merge, phase, (n > 0 ? (sm + merge + phase) / n : 0)
    }' "$1"
}

echo "# whole_run.sh $case, $(date -u '+%F %T') UTC, $(git -C "$root" describe --always --dirty 2>/dev/null || echo '?'), $(nproc) cores, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
case "$case" in
  demo)
    echo "\$ spinifel demo -o OUT"
    timed "$bin" demo -o "$out/demo" > "$out/demo.txt" 2>&1 || { cat "$out/demo.txt"; exit 1; }
    grep -E "reconstructed|orientation error|density vs|references:" "$out/demo.txt" || true
    report_time "demo (simulation and reconstruction)"
    step_split "$out/demo/log.jsonl"
    # The demo-size end-to-end check (tests/test_end_to_end.c runs it at CI size):
    # median orientation error below 10 degrees, density correlation above 0.8.
    awk '/orientation error: median/ { for (i = 1; i <= NF; i++) if ($i == "median") med = $(i + 1) }
         /correlation/ { for (i = 1; i <= NF; i++) if ($i == "correlation") { c = $(i + 1); sub(/;/, "", c) } }
         END { ok = med != "" && c != "" && med + 0 < 10 && c + 0 > 0.8
               printf "demo check (median < 10 deg, correlation > 0.8): median %s deg, correlation %s: %s\n", med, c, ok ? "PASS" : "FAIL"
               exit !ok }' "$out/demo.txt"
    ;;
  photon)
    pdb="${SPINIFEL_PDB:-$root/../shared/data/2cex.pdb}"
    [ -r "$pdb" ] || { echo "whole_run.sh: no PDB file $pdb (set SPINIFEL_PDB)" >&2; exit 2; }
    sim=(simulate --pdb "$pdb" --pixels 101 --distance 0.53 --beamstop 0.00273 --fluence 8e13 --images 5000)
    echo "\$ spinifel ${sim[*]} -o OUT/data.h5"
    "$bin" "${sim[@]}" -o "$out/data.h5" --quiet | grep -E "photons|detector" || true
    echo "\$ spinifel reconstruct OUT/data.h5 -o OUT/run"
    timed "$bin" reconstruct "$out/data.h5" -o "$out/run" 2>&1 | grep -vE "^\s*$|generation [0-9]+/" | tail -n 4 || true
    report_time "reconstruction"
    step_split "$out/run/log.jsonl"
    ;;
  paper)
    cmd=("$build/mtip_bench" --images 10000 --pixels 128 --M 81 --refs 100000)
    echo "\$ ${cmd[*]#$root/}"
    timed "${cmd[@]}"
    report_time "generation (mtip_bench)"
    ;;
esac
