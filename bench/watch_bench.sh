#!/usr/bin/env bash
# spinifel watch on a stream (figures for BENCHMARKS.md, "Reconstruction while data arrive"):
#  - latency: from a burst's arrival (its rename into the folder) to its feedback line,
#    against the images so far. A feeder renames burst k + 1 into the folder only after
#    burst k's line is written, so no burst waits behind another: the latency is the
#    watch's own work for that burst;
#  - the projection's honesty: bursts stream until the target resolution is reached (or
#    BURSTS bursts); the count projected after the first few bursts is compared with the
#    count that reached it.
#
# usage: bench/watch_bench.sh [BUILD_DIR]       (default: build)
# environment (defaults in brackets):
#   BURSTS [8]   IMAGES [2000] per burst   PIXELS [64]   DISTANCE [0.06] m
#   FLUENCE [1e14] photons/um^2 (about 370 photons per 64 x 64 image of the phantom)
#   TARGET [12] A, the --target-resolution   THREADS [2]   WATCH_ARGS [] more watch flags
#   SPINIFEL_BENCH_KEEP=1 keeps the temporary directory (its path is printed)
# The data: the built-in phantom, Poisson noise, one seed; the watch's defaults otherwise
# (the Poisson model, EMC's 3,240 references, 16 generations for the first burst, 3 per
# later burst, FSC 0.5 as the trend's resolution).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"
bin="$build/spinifel"
[ -x "$bin" ] || { echo "watch_bench.sh: no $bin (build first: bash tools/build.sh)" >&2; exit 2; }
BURSTS="${BURSTS:-8}" IMAGES="${IMAGES:-2000}" PIXELS="${PIXELS:-64}" DISTANCE="${DISTANCE:-0.06}"
FLUENCE="${FLUENCE:-1e14}" TARGET="${TARGET:-12}" THREADS="${THREADS:-2}" WATCH_ARGS="${WATCH_ARGS:-}"
out="$(mktemp -d /tmp/spinifel-watch-bench.XXXXXX)"
wpid=""
cleanup() {
  [ -n "$wpid" ] && kill "$wpid" 2>/dev/null
  if [ "${SPINIFEL_BENCH_KEEP:-0}" = 1 ]; then echo "kept $out"; else rm -rf "$out"; fi
}
trap cleanup EXIT
echo "# bench/watch_bench.sh: BURSTS=$BURSTS IMAGES=$IMAGES PIXELS=$PIXELS DISTANCE=$DISTANCE FLUENCE=$FLUENCE" \
  "TARGET=$TARGET THREADS=$THREADS WATCH_ARGS='$WATCH_ARGS'"
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $("$bin" --version)"

# All bursts first, into a staging folder on the same file system (mv is a rename there).
mkdir -p "$out/stage" "$out/in"
"$bin" simulate --bursts "$BURSTS" --images "$IMAGES" --pixels "$PIXELS" --distance "$DISTANCE" \
  --fluence "$FLUENCE" --threads "$THREADS" --quiet -o "$out/stage" | tail -2

# shellcheck disable=SC2086
"$bin" watch "$out/in" -o "$out/live" --target-resolution "$TARGET" --threads "$THREADS" --poll 0.2 \
  --stop-after-idle 86400 --quiet $WATCH_ARGS > "$out/watch.log" 2>&1 &
wpid=$!
fb="$out/live/feedback.jsonl"
for k in $(seq 1 "$BURSTS"); do
  f="$(printf 'burst_%04d.h5' "$k")"
  mv "$out/stage/$f" "$out/in/$f"
  while :; do
    n=0
    [ -f "$fb" ] && n=$(wc -l < "$fb")
    [ "$n" -ge "$k" ] && break
    if ! kill -0 "$wpid" 2>/dev/null; then echo "watch ended early:"; cat "$out/watch.log"; exit 1; fi
    sleep 0.5
  done
  line="$(sed -n "${k}p" "$fb")"
  echo "$line" | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
p = d["projection"]
print("burst %2d: %6d images (%s examined), latency %6.1f s (read %.1f, half 1 %.1f, half 2 %.1f, compare %.1f, outputs %.1f; peak %s MiB);"
      " resolution %.2f A (FSC 0.5), %.2f A (0.143); error %s deg; projection %s %s [%s, %s]; warnings %s"
      % (d["burst"], d["images"], d.get("examined", "-"), d["latency_s"], d["t_read"], d["t_half1"], d["t_half2"], d["t_compare"],
         d["t_outputs"], "%.0f" % d["peak_rss_mib"] if d.get("peak_rss_mib") is not None else "-", d["resolution_A"], d["resolution_fsc0143_A"],
         "%.1f" % d["median_orientation_error_deg"] if d["median_orientation_error_deg"] is not None else "-",
         p.get("status"), "%.0f" % p["images"] if p.get("images") is not None else "-",
         "%.0f" % p["images_low"] if p.get("images_low") is not None else "-",
         "%.0f" % p["images_high"] if p.get("images_high") is not None else "-", ",".join(d["warnings"]) or "-"))'
  if echo "$line" | grep -q '"status":"reached"'; then
    echo "target $TARGET A reached after burst $k"
    break
  fi
done
kill -TERM "$wpid" 2>/dev/null || true
wait "$wpid" 2>/dev/null || true
wpid=""

# The projection's honesty: the count projected after burst k against the count at the
# first burst whose resolution reached the target.
python3 - "$fb" "$TARGET" <<'EOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
target = float(sys.argv[2])
reached = next((d["images"] for d in lines if d["resolution_A"] is not None and d["resolution_A"] <= target), None)
print("projection's honesty, target %.2f A: %s" % (target, "reached at %d images" % reached if reached else
      "not reached in %d bursts (%d images)" % (len(lines), lines[-1]["images"])))
for d in lines:
    p = d["projection"]
    if p.get("status") == "projected" and p.get("images") is not None:
        err = "%+.0f%%" % (100.0 * (p["images"] / reached - 1)) if reached else "-"
        rng = ("[%.0f, %.0f]" % (p["images_low"], p["images_high"])) if p.get("images_low") is not None else "[-]"
        print("  after burst %d (%d images): projected %.0f %s, vs actual: %s" % (d["burst"], d["images"], p["images"], rng, err))
# The same fit (spf_watch_project: the last 6 settled bursts inside the grid, at least 3, log(1/d)
# against log N, from the first burst whose halves changed fewer than 5% of their
# orientations: spf_watch_first_settled) after bursts k, for every resolution the stream
# reached later: the projected count and its one-s.e. range against the count that
# reached it first, and the count from which it held (the median of three bursts at or
# below it: one burst's FSC moves by 1-2 A with the phasing).
import math, statistics
def project(pts, target):
    pts = pts[-6:]
    if len(pts) < 3: return None
    x = [math.log(n) for n, d in pts]; y = [-math.log(d) for n, d in pts]
    m = len(x); mx, my = sum(x) / m, sum(y) / m
    sxx = sum((a - mx) ** 2 for a in x); sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    if sxx <= 0: return None
    b = sxy / sxx; a = my - b * mx
    if b < 0.05: return None
    xs = (-math.log(target) - a) / b
    s = math.sqrt(sum((yy - a - b * xx) ** 2 for xx, yy in zip(x, y)) / (m - 2))
    se = s / abs(b) * math.sqrt(1.0 / m + (xs - mx) ** 2 / sxx)
    return math.exp(xs), math.exp(xs - se), math.exp(xs + se)
changed = [max(d.get("fraction_changed_half1") or 0, d.get("fraction_changed_half2") or 0) for d in lines]
first = next((i for i, c in enumerate(changed) if c < 0.05), len(lines))
print("  orientations settled from burst %s (fraction changed %s)" % (first + 1 if first < len(lines) else "-",
      " ".join("%.3f" % c for c in changed)))
res = [d["resolution_A"] if d["resolution_A"] is not None and not d["at_nyquist"] else None for d in lines]
def held(i):
    w = [r for r in res[max(0, i - 2):i + 1] if r is not None]
    return statistics.median(w) if i >= 2 and len(w) == 3 else None
targets = sorted({round(r, 1) for r in res[first:] if r is not None}, reverse=True)
for k in range(first + 3, min(first + 7, len(lines)) + 1):
    pts = [(lines[i]["images"], res[i]) for i in range(first, k) if res[i] is not None]
    for t in targets:
        reached = next((lines[i]["images"] for i in range(len(lines)) if res[i] is not None and res[i] <= t), None)
        steady = next((lines[i]["images"] for i in range(len(lines)) if held(i) is not None and held(i) <= t), None)
        if reached is None or reached <= lines[k - 1]["images"]: continue
        pr = project(pts, t)
        if pr is None:
            print("  after burst %d, target %.1f A (first reached at %d, held from %s): no projection" % (
                  k, t, reached, steady))
            continue
        n, lo, hi = pr
        def rel(v): return "%+.0f%%" % (100.0 * (n / v - 1)) if v else "-"
        inside = lambda v: "-" if v is None or lo is None else ("inside" if lo <= v <= hi else "outside")
        print("  after burst %d, target %.1f A: projected %.0f [%s, %s]; first reached at %d (%s, %s the range), "
              "held from %s (%s, %s)" % (k, t, n, "%.0f" % lo if lo else "-", "%.0f" % hi if hi else "-", reached,
              rel(reached), inside(reached), steady if steady else "-", rel(steady), inside(steady)))
EOF
