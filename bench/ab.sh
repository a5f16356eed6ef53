#!/usr/bin/env bash
# A/B: the same benchmark on two commits, interleaved (A B A B ...), and the ratio.
# These machines are shared and noisy; a ratio of runs interleaved in one session is
# the figure a speed claim can rest on, not two timings taken at different times.
#
# usage: bench/ab.sh [--rounds N] [--metric REGEX] [--keep] COMMIT_A COMMIT_B -- CMD [ARGS...]
#
#   Each commit is checked out (git worktree, detached) and built once under
#   $AB_DIR (default /tmp/spinifel-ab/<commit hash>); the build is reused next time.
#   In CMD and ARGS, {build} is replaced by that commit's build directory and {out}
#   by a fresh empty directory per run (removed afterwards unless --keep).
#   The figure of a run is its wall time in seconds, or with --metric the number
#   captured by the first parenthesised group of REGEX (extended regex, last match
#   in the run's stdout + stderr), e.g. --metric 'generation ([0-9.]+) s'.
#   Rounds (default 3): A then B, N times. Prints every figure, each side's median
#   and the ratio of medians B / A with the range of the per-round ratios.
#
# example: bench/ab.sh HEAD~1 HEAD -- {build}/spinifel demo -o {out}
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
rounds=3 metric="" keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2 ;;
    --metric) metric="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) break ;;
  esac
done
if [ $# -lt 4 ] || [ "$3" != "--" ]; then
  echo "ab.sh: usage: bench/ab.sh [--rounds N] [--metric REGEX] [--keep] COMMIT_A COMMIT_B -- CMD [ARGS...]" >&2
  exit 2
fi
case "$rounds" in ''|*[!0-9]*|0) echo "ab.sh: --rounds must be a positive integer" >&2; exit 2 ;; esac
ref_a="$1" ref_b="$2"
shift 3
ab_dir="${AB_DIR:-/tmp/spinifel-ab}"
mkdir -p "$ab_dir"

for ref in "$ref_a" "$ref_b"; do
  git -C "$root" rev-parse --verify --quiet "$ref^{commit}" > /dev/null || { echo "ab.sh: no such commit: $ref" >&2; exit 2; }
done

# Check out and build one commit; prints its build directory.
build_commit() {
  local hash dir
  hash="$(git -C "$root" rev-parse --verify --quiet "$1^{commit}")"
  dir="$ab_dir/$hash"
  if [ ! -x "$dir/build/spinifel" ]; then
    if [ ! -d "$dir" ]; then
      git -C "$root" worktree add --detach --force "$dir" "$hash" > /dev/null 2>&1 ||
        { echo "ab.sh: cannot check out $1 into $dir" >&2; exit 1; }
    fi
    echo "ab.sh: building $1 (${hash:0:10}) in $dir/build" >&2
    bash "$dir/tools/build.sh" "$dir/build" > "$dir/build.log" 2>&1 ||
      { echo "ab.sh: build of $1 failed, see $dir/build.log" >&2; exit 1; }
  fi
  echo "$dir/build"
}
build_a="$(build_commit "$ref_a")"
build_b="$(build_commit "$ref_b")"

# One run: prints its figure.
run_one() {
  local build="$1" out log t0 t1 fig
  shift
  out="$(mktemp -d "$ab_dir/out.XXXXXX")"
  log="$out.log"
  local args=()
  for a in "$@"; do a="${a//\{build\}/$build}"; args+=("${a//\{out\}/$out}"); done
  t0="$(date +%s.%N)"
  if ! "${args[@]}" > "$log" 2>&1; then
    echo "ab.sh: the command failed (${args[*]}); its output: $log" >&2
    exit 1
  fi
  t1="$(date +%s.%N)"
  if [ -n "$metric" ]; then
    fig="$(sed -nE "s/.*${metric}.*/\1/p" "$log" | tail -n 1)"
    [ -n "$fig" ] || { echo "ab.sh: --metric '$metric' matched nothing in $log" >&2; exit 1; }
  else
    fig="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
  fi
  [ "$keep" = 1 ] || rm -rf "$out" "$log"
  echo "$fig"
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "# ab.sh $(date -u '+%F %T') UTC on $(nproc) cores: A = $ref_a ($(git -C "$root" rev-parse --short "$ref_a")), B = $ref_b ($(git -C "$root" rev-parse --short "$ref_b"))"
echo "# command: $*"
echo "# figure: ${metric:-wall seconds}; $rounds rounds, A then B"
fa=() fb=() ratios=()
for ((r = 1; r <= rounds; r++)); do
  a="$(run_one "$build_a" "$@")"
  b="$(run_one "$build_b" "$@")"
  fa+=("$a") fb+=("$b")
  ratio="$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.4f", (a > 0 ? b / a : 0) }')"
  ratios+=("$ratio")
  echo "round $r: A $a  B $b  B/A $ratio"
done
ma="$(printf '%s\n' "${fa[@]}" | median)"
mb="$(printf '%s\n' "${fb[@]}" | median)"
lo="$(printf '%s\n' "${ratios[@]}" | sort -g | head -n 1)"
hi="$(printf '%s\n' "${ratios[@]}" | sort -g | tail -n 1)"
awk -v ma="$ma" -v mb="$mb" -v lo="$lo" -v hi="$hi" \
  'BEGIN { printf "median: A %s  B %s  B/A %.3f (rounds %s .. %s)\n", ma, mb, (ma > 0 ? mb / ma : 0), lo, hi }'
