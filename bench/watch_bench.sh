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
#   SEED [1] the simulation's (noise and orientations)
#   SPINIFEL_BENCH_KEEP=1 keeps the temporary directory (its path is printed)
# The data: the built-in phantom, Poisson noise, one seed (SEED); the watch's defaults otherwise
# (the Poisson model, EMC's 3,240 references, 16 generations for the first burst, 3 per
# later burst, the data resolution at 0.5 as the trend's).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"
bin="$build/spinifel"
[ -x "$bin" ] || { echo "watch_bench.sh: no $bin (build first: bash tools/build.sh)" >&2; exit 2; }
BURSTS="${BURSTS:-8}" IMAGES="${IMAGES:-2000}" PIXELS="${PIXELS:-64}" DISTANCE="${DISTANCE:-0.06}"
FLUENCE="${FLUENCE:-1e14}" TARGET="${TARGET:-12}" THREADS="${THREADS:-2}" WATCH_ARGS="${WATCH_ARGS:-}" SEED="${SEED:-1}"
out="$(mktemp -d /tmp/spinifel-watch-bench.XXXXXX)"
wpid=""
cleanup() {
  [ -n "$wpid" ] && kill "$wpid" 2>/dev/null
  if [ "${SPINIFEL_BENCH_KEEP:-0}" = 1 ]; then echo "kept $out"; else rm -rf "$out"; fi
}
trap cleanup EXIT
echo "# bench/watch_bench.sh: BURSTS=$BURSTS IMAGES=$IMAGES PIXELS=$PIXELS DISTANCE=$DISTANCE FLUENCE=$FLUENCE" \
  "TARGET=$TARGET THREADS=$THREADS SEED=$SEED WATCH_ARGS='$WATCH_ARGS'"
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $("$bin" --version)"

# All bursts first, into a staging folder on the same file system (mv is a rename there).
mkdir -p "$out/stage" "$out/in"
"$bin" simulate --bursts "$BURSTS" --images "$IMAGES" --pixels "$PIXELS" --distance "$DISTANCE" \
  --fluence "$FLUENCE" --seed "$SEED" --threads "$THREADS" --quiet -o "$out/stage" | tail -2

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
      " data resolution %s A; density %.2f A (FSC 0.5), %.2f A (0.143); error %s deg; projection %s %s [%s, %s]; warnings %s"
      % (d["burst"], d["images"], d.get("examined", "-"), d["latency_s"], d["t_read"], d["t_half1"], d["t_half2"], d["t_compare"],
         d["t_outputs"], "%.0f" % d["peak_rss_mib"] if d.get("peak_rss_mib") is not None else "-",
         "%.2f" % d["data_resolution_A"] if d.get("data_resolution_A") is not None else "-", d["resolution_fsc05_A"], d["resolution_fsc0143_A"],
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
# first burst whose trend resolution (the projection's "of": the data resolution by default)
# reached the target.
python3 - "$fb" "$TARGET" <<'EOF'
import json, math, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
target = float(sys.argv[2])
of = next((d["projection"].get("of") for d in lines if d["projection"].get("of")), "data_resolution")
key = "data_resolution_A" if of == "data_resolution" else "resolution_A"
reached = next((d["images"] for d in lines if d[key] is not None and d[key] <= target), None)
print("projection's honesty (%s), target %.2f A: %s" % (of, target, "reached at %d images" % reached if reached else
      "not reached in %d bursts (%d images)" % (len(lines), lines[-1]["images"])))
for d in lines:
    p = d["projection"]
    if p.get("status") == "projected" and p.get("images") is not None:
        err = "%+.0f%%" % (100.0 * (p["images"] / reached - 1)) if reached else "-"
        rng = ("[%.0f, %.0f]" % (p["images_low"], p["images_high"])) if p.get("images_low") is not None else "[-]"
        print("  after burst %d (%d images): projected %.0f %s, vs actual: %s" % (d["burst"], d["images"], p["images"], rng, err))
# The same projections after every burst k, for every resolution (to 0.1 A) the stream
# reached after it, against the count that first reached it (known to a burst: a range
# holds it when it meets (the burst before's count, that count]). The data resolution's:
# spf_watch_project_shells again (each shell's log(c/(1-c)) against log N over the last 6
# settled rows inside the grid, slope at most 1; the first count from the last row's where
# the predicted curve's outer crossing reaches the target; the range from the backtests),
# at the watch's threshold (where it must agree with the feedback lines) and at 0.7; the
# density's FSC resolution: spf_watch_project's line (one-s.e. range).
def outer(cc, nyq, t):
    # spf_watch_data_resolution: the outer crossing, shell 0 as above, NaN as below; d = nyq (ns - 1) / k.
    c = [1.0] + [v if v is not None else float("nan") for v in cc[1:]]
    k = len(c) - 1
    while k > 0 and not c[k] >= t: k -= 1
    if k == len(c) - 1: return nyq
    f = (c[k] - t) / (c[k] - c[k + 1]) if c[k] > c[k + 1] else 0.0
    return nyq * (len(c) - 1) / (k + f)
def project_line(pts, target):
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
def shell_fit(rows):
    x = [math.log(n) for n, cc in rows]; m = len(x); mx = sum(x) / m
    sxx = sum((a - mx) ** 2 for a in x); fit = []
    for k in range(1, len(rows[0][1])):
        y = []
        for n, cc in rows:
            c = cc[k] if cc[k] is not None else 0.0
            c = min(max(c, 1e-3), 0.999); y.append(math.log(c / (1 - c)))
        my = sum(y) / m; g = sum((a - mx) * (b - my) for a, b in zip(x, y)) / sxx if sxx > 0 else 0
        g = min(g, 1.0); fit.append((my - g * mx, g))
    return fit
def shell_res(fit, x, nyq, t):
    return outer([None] + [1 / (1 + math.exp(-(a + g * x))) for a, g in fit], nyq, t)
def shell_reach(fit, x0, nyq, t, target):
    if shell_res(fit, x0, nyq, t) <= target: return x0
    step = math.log(1000.0) / 240
    for s in range(1, 241):
        lo, hi = x0 + (s - 1) * step, x0 + s * step
        if not shell_res(fit, hi, nyq, t) <= target: continue
        for _ in range(50):
            mid = 0.5 * (lo + hi)
            if shell_res(fit, mid, nyq, t) <= target: hi = mid
            else: lo = mid
        return hi
    return None
def project_shells(rows, nyq, t, target):
    if len(rows) < 5: return None
    d = [outer(cc, nyq, t) for n, cc in rows]; x = [math.log(n) for n, cc in rows]; n = len(rows)
    kappa = None
    for e in range(n - 2, max(2, n - 7), -1):
        if not d[-1] < d[e - 1]: continue
        xr = shell_reach(shell_fit(rows[max(0, e - 6):e]), x[e - 1], nyq, t, d[-1] * (1 + 1e-12))
        r = abs(xr - x[-1]) / (x[-1] - x[e - 1]) if xr is not None else float("inf")
        kappa = r if kappa is None or r > kappa else kappa
    xs = shell_reach(shell_fit(rows[-6:]), x[-1], nyq, t, target)
    if xs is None: return None
    h = max(xs - x[-1], x[-1] - x[-2])
    if kappa is None: return math.exp(xs), rows[-1][0], float("inf")
    lo = min(math.exp(x[-1] + h / (1 + kappa)), math.exp(xs))
    hi = max(math.exp(x[-1] + h / (1 - kappa)), math.exp(xs)) if kappa < 1 else float("inf")
    return math.exp(xs), lo, hi
changed = [max(d.get("fraction_changed_half1") or 0, d.get("fraction_changed_half2") or 0) for d in lines]
first = next((i for i, c in enumerate(changed) if c < 0.05), len(lines))
print("  orientations settled from burst %s (fraction changed %s)" % (first + 1 if first < len(lines) else "-",
      " ".join("%.3f" % c for c in changed)))
thr = lines[0]["fsc_threshold"]
nyq = lines[0]["nyquist_A"]
for d in lines:
    if "intensity_shell_corr_halves" in d and d["data_resolution_A"] is not None:
        again = outer(d["intensity_shell_corr_halves"], d["nyquist_A"], thr)
        assert abs(again - d["data_resolution_A"]) <= 1e-3 * again, (d["burst"], again, d["data_resolution_A"])
series = [("data resolution at %g" % t, t, [outer(d["intensity_shell_corr_halves"], nyq, t) for d in lines])
          for t in sorted({thr, 0.7}) if all("intensity_shell_corr_halves" in d for d in lines)]
series.append(("density FSC resolution at %g" % thr, None, [d["resolution_A"] for d in lines]))
for name, t, res in series:
    res = [r if r is not None and r > nyq * (1 + 1e-9) else None for r in res]
    print("  %s, per burst: %s" % (name, " ".join("%.2f" % r if r else "-" for r in res)))
    within = inside = total = none = 0
    worst = 0.0
    for k in range(first + 3, len(lines) + 1):
        use = [i for i in range(first, k) if res[i] is not None]
        pts = [(lines[i]["images"], res[i]) for i in use]
        rows = [(lines[i]["images"], lines[i]["intensity_shell_corr_halves"]) for i in use]
        if t == thr and of == "data_resolution" and lines[k - 1]["projection"].get("status") == "projected":
            # The watch's own projection, re-derived here.
            again = project_shells(rows, nyq, t, target)
            got = lines[k - 1]["projection"]["images"]
            assert again and abs(again[0] / got - 1) < 1e-4, (k, again, got)
        for tg in sorted({round(r, 1) for r in res[k:] if r is not None}, reverse=True):
            hit = next((i for i in range(len(lines)) if res[i] is not None and res[i] <= tg), None)
            if hit is None or lines[hit]["images"] <= lines[k - 1]["images"]: continue
            total += 1
            pr = project_shells(rows, nyq, t, tg) if t is not None else project_line(pts, tg)
            if pr is None:
                none += 1
                continue
            n, lo, hi = pr
            e = n / lines[hit]["images"] - 1
            within += abs(e) <= 0.3
            inside += lo <= lines[hit]["images"] and hi > lines[hit - 1]["images"]
            worst = e if abs(e) > abs(worst) else worst
    print("    %d cases, %d without a projection (too few settled bursts, or no trend to the target); of the %d "
          "projected, within 30%% of the count that first reached the target: %d (worst %+.1f%%); that count "
          "inside the range: %d" % (total, none, total - none, within, 100 * worst, inside))
EOF
