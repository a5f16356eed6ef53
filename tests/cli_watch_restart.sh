#!/usr/bin/env bash
# spinifel watch: a killed watch (SIGKILL, mid-burst) restarts where it stopped and ends
# with the same bytes as an uninterrupted one; SIGTERM ends it cleanly (exit 0) and it
# continues; bad usage is refused. Usage: cli_watch_restart.sh SPINIFEL
set -u
bin="$1"
source "$(dirname "$0")/lib_cli.sh"
tmp="$(mktemp -d /tmp/spf_cli_watchrXXXXXX)"
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT

# Small and quick: the machinery is under test here, not the reconstruction's quality.
"$bin" simulate --bursts 4 --images 80 --pixels 16 --distance 0.03 --no-noise -o "$tmp/in" --quiet > /dev/null 2>&1
small=(--M 13 --refs 400 --refs-start 0 --soft-k 8 --soft-gens 1 --phase-cycles 3 --threads 2 --generations 3
       --refine-generations 2 --poll 0.05 --align-rotations 500 --quiet)

check "no input folder is a usage error" 2 "$bin" watch -o "$tmp/o"
check "an unknown parameter is a usage error" 2 "$bin" watch "$tmp/in" -o "$tmp/o" --frobnicate 1
check "--trend takes data or density" 2 "$bin" watch "$tmp/in" -o "$tmp/o" --trend bogus
expect "--trend: said which" grep -q "trend must be data or density" <<< "$LAST_OUT"
check "--images is not a watch parameter" 2 "$bin" watch "$tmp/in" -o "$tmp/o" --images 10
expect "--images: said why" grep -q "not a watch parameter" <<< "$LAST_OUT"
check "a missing input folder" 1 "$bin" watch "$tmp/none" -o "$tmp/o"
expect "a missing input folder: one line" one_line
check "help" 0 "$bin" help watch
expect "help names the writer's contract" grep -q "final name" <<< "$LAST_OUT"

# The uninterrupted run. Each run writes to "out" in its own folder: results.h5 keeps the
# configuration, output directory included, as given.
mkdir -p "$tmp/ra" "$tmp/rb" "$tmp/rc"
ln -s "$tmp/ra/out" "$tmp/a"
ln -s "$tmp/rb/out" "$tmp/b"
ln -s "$tmp/rc/out" "$tmp/c"
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
check "uninterrupted watch" 0 bash -c 'cd "$0/ra" && "$1" watch ../in -o out --stop-after-idle 0.3 "${@:2}"' "$tmp" "$bin" "${small[@]}"
expect "uninterrupted: four feedback lines" bash -c "[ \$(wc -l < '$tmp/a/feedback.jsonl') -eq 4 ]"

# --trend density: the projection reads the density's FSC resolution through a line (no
# backtests, no kappa). Every burst counted as settled (--settled-fraction 1), so the line
# is fitted: its exponent is the least-squares slope of log(1/resolution_A) on log(images)
# over the four lines (recomputed here), and the status follows from it.
check "--trend density" 0 "$bin" watch "$tmp/in" -o "$tmp/td" --stop-after-idle 0.3 --trend density \
  --settled-fraction 1 --target-resolution 30 "${small[@]}"
expect "--trend density: every projection of the density's resolution, no kappa" \
  bash -c "[ \$(grep -c '\"projection\":{\"target_A\":30,\"of\":\"resolution\",\"status\":\"[a-z_]*\",.*\"kappa\":null' '$tmp/td/feedback.jsonl') -eq 4 ]"
field() { grep -o "\"$1\":[-0-9.e+]*" "$tmp/td/feedback.jsonl" | cut -d: -f2 | tr '\n' ' '; }
slope=$(awk -v n="$(field images)" -v d="$(field resolution_A)" 'BEGIN {
  split(n, N, " "); split(d, D, " "); for (i = 1; i <= 4; i++) { x = log(N[i]); y = -log(D[i]); sx += x; sy += y; sxx += x * x; sxy += x * y }
  printf "%.9g", (sxy - sx * sy / 4) / (sxx - sx * sx / 4) }')
b4=$(sed -n 4p "$tmp/td/feedback.jsonl" | grep -o '"exponent":[-0-9.e+]*' | cut -d: -f2)
expect "--trend density: the exponent $b4 is the line's through the density's resolutions ($slope)" \
  awk -v a="$b4" -v b="$slope" 'BEGIN { exit !(a != "" && (a - b) ^ 2 < (1e-5 * (b < 0 ? -b : b) + 1e-9) ^ 2) }'
want=$(awk -v b="$b4" 'BEGIN { print (b < 0.05 ? "not_improving" : "(projected|uncertain)") }')
expect "--trend density: the status follows the exponent ($want)" bash -c "sed -n 4p '$tmp/td/feedback.jsonl' | grep -qE '\"status\":\"$want\"'"

# Killed with SIGKILL while it works on a burst after the first, then started again.
(cd "$tmp/rb" && exec "$bin" watch ../in -o out --stop-after-idle 30 "${small[@]}" > /dev/null 2>&1) &
pid=$!
pids+=("$pid")
for _ in $(seq 1 600); do
  [ -s "$tmp/b/feedback.jsonl" ] && break
  sleep 0.05
done
sleep 0.3 # into the second burst
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
lines_at_kill=$(wc -l < "$tmp/b/feedback.jsonl")
expect "killed before the end (feedback lines at the kill: $lines_at_kill)" test "$lines_at_kill" -lt 4
# A killed writer's temporaries (no such process) go at the next start.
printf 'x' > "$tmp/b/report.html.tmp.2147483646"
printf 'x' > "$tmp/b/state/watch.state.tmp.2147483646"
check "restart after SIGKILL" 0 bash -c 'cd "$0/rb" && "$1" watch ../in -o out --stop-after-idle 0.3 "${@:2}"' "$tmp" "$bin" "${small[@]}"
expect "restart: four feedback lines, one per burst" bash -c "[ \$(wc -l < '$tmp/b/feedback.jsonl') -eq 4 ]"
expect "restart: the bursts in order" bash -c "[ \"\$(grep -o '\"burst\":[0-9]*' '$tmp/b/feedback.jsonl' | tr '\n' ' ')\" = '\"burst\":1 \"burst\":2 \"burst\":3 \"burst\":4 ' ]"
for f in density.mrc results.h5 fsc_halves.csv state/half1.00004.h5 state/half2.00004.h5 state/watch.state; do
  expect "restart: $f as uninterrupted" cmp "$tmp/a/$f" "$tmp/b/$f"
done
# The deterministic part of each feedback line (not the times) is the same.
expect "restart: the same feedback but for the times" bash -c "diff <(sed -E 's/,\"(arrived_unix|written_unix|latency_s|peak_rss_mib|t_[a-z0-9_]+)\":[^,}]*//g' '$tmp/a/feedback.jsonl') <(sed -E 's/,\"(arrived_unix|written_unix|latency_s|peak_rss_mib|t_[a-z0-9_]+)\":[^,}]*//g' '$tmp/b/feedback.jsonl')"
expect "restart: no temporary or stale state left" bash -c "[ \$(ls '$tmp/b/state' | wc -l) -eq 3 ] && ! ls '$tmp/b' | grep -q tmp"

# States of versions 3 (before each burst kept its intensity shell correlations), 2
# (nor its data resolution) and 1 (nor its fraction changed) are read: all four bursts
# ingested, nothing to do; a version this build does not know is refused.
cp -r "$tmp/ra" "$tmp/rv"
nf=$(awk '/^b /{print NF}' "$tmp/a/state/watch.state" | sort -u)
expect "version 4: a curve after each burst's line" bash -c "[ \$(grep -c '^c ' '$tmp/rv/out/state/watch.state') -eq 4 ] && awk '/^b /{b=1; next} b&&!/^c /{exit 1} {b=0}' '$tmp/rv/out/state/watch.state'"
sed -i -e 's/^spinifel watch state 4$/spinifel watch state 3/' -e '/^c /d' "$tmp/rv/out/state/watch.state"
check "a version 3 state is read" 0 bash -c 'cd "$0/rv" && "$1" watch ../in -o out --stop-after-idle 0.3 "${@:2}"' "$tmp" "$bin" "${small[@]}"
expect "version 3: nothing ingested again" bash -c "[ \$(wc -l < '$tmp/rv/out/feedback.jsonl') -eq 4 ]"
sed -i -e 's/^spinifel watch state 3$/spinifel watch state 2/' \
  -e 's/^\(b \([^ ]* \)\{9\}\)[^ ]* /\1/' "$tmp/rv/out/state/watch.state"
expect "a version 2 state as written before" bash -c "head -1 '$tmp/rv/out/state/watch.state' | grep -qx 'spinifel watch state 2' && [ \$(awk '/^b /{print NF}' '$tmp/rv/out/state/watch.state' | sort -u) = $((nf - 1)) ]"
check "a version 2 state is read" 0 bash -c 'cd "$0/rv" && "$1" watch ../in -o out --stop-after-idle 0.3 "${@:2}"' "$tmp" "$bin" "${small[@]}"
expect "version 2: nothing ingested again" bash -c "[ \$(wc -l < '$tmp/rv/out/feedback.jsonl') -eq 4 ]"
sed -i -e 's/^spinifel watch state 2$/spinifel watch state 1/' \
  -e 's/^\(b \([^ ]* \)\{8\}\)[^ ]* /\1/' "$tmp/rv/out/state/watch.state"
expect "a version 1 state as written before" bash -c "head -1 '$tmp/rv/out/state/watch.state' | grep -qx 'spinifel watch state 1' && [ \$(awk '/^b /{print NF}' '$tmp/rv/out/state/watch.state' | sort -u) = $((nf - 2)) ]"
check "a version 1 state is read" 0 bash -c 'cd "$0/rv" && "$1" watch ../in -o out --stop-after-idle 0.3 "${@:2}"' "$tmp" "$bin" "${small[@]}"
expect "version 1: nothing ingested again" bash -c "[ \$(wc -l < '$tmp/rv/out/feedback.jsonl') -eq 4 ]"
sed -i 's/^spinifel watch state 1$/spinifel watch state 9/' "$tmp/rv/out/state/watch.state"
check "an unknown state version is refused" 1 bash -c 'cd "$0/rv" && "$1" watch ../in -o out --stop-after-idle 0.3 "${@:2}"' "$tmp" "$bin" "${small[@]}"
expect "an unknown state version: said so" grep -q "not a watch state this version reads" <<< "$LAST_OUT"

check "plot on a watch's directory redraws the pictures" 0 "$bin" plot "$tmp/a"
expect "plot keeps the watch's own report" grep -q 'http-equiv="refresh"' "$tmp/a/report.html"
# A burst of another geometry (20 x 20 pixels) among them: skipped by name, the state
# untouched (the run below still ends with the bytes of the run without it).
"$bin" simulate --bursts 1 --burst-prefix odd_ --images 20 --pixels 20 --distance 0.03 --no-noise -o "$tmp/odd" \
  --quiet > /dev/null 2>&1
mv "$tmp/odd/odd_0001.h5" "$tmp/in/burst_0002b.h5"
# SIGTERM: ends after the current step with exit 0; the same command continues.
(cd "$tmp/rc" && exec "$bin" watch ../in -o out "${small[@]}" > "$tmp/c.log" 2>&1) &
pid=$!
pids+=("$pid")
for _ in $(seq 1 600); do
  [ -s "$tmp/c/feedback.jsonl" ] && break
  sleep 0.05
done
kill -TERM "$pid"
wait "$pid"
rc=$?
expect "SIGTERM: exit 0 (got $rc)" test "$rc" -eq 0
expect "SIGTERM: says it stopped" grep -q "stopped by a signal" "$tmp/c.log"
check "continues after SIGTERM" 0 bash -c 'cd "$0/rc" && "$1" watch ../in -o out --stop-after-idle 0.3 "${@:2}"' "$tmp" "$bin" "${small[@]}"
for f in density.mrc results.h5; do
  expect "after SIGTERM and a skipped burst: $f as uninterrupted" cmp "$tmp/a/$f" "$tmp/c/$f"
done
expect "the burst of another geometry is skipped by name" \
  bash -c "cat '$tmp/c.log' - <<< \"\$0\" | grep -q 'skipped burst_0002b.h5: .*not the same geometry'" "$LAST_OUT"
check "another configuration in the same OUTDIR is refused" 2 "$bin" watch "$tmp/in" -o "$tmp/c" --stop-after-idle 0.3 \
  "${small[@]}" --refine-generations 3
expect "another configuration: one line" one_line
# The Poisson model with a small --refresh-images: later bursts examine the new images and a
# share of the earlier; the others count with their kept probabilities, which the
# checkpoint carries: a killed run still ends with the uninterrupted run's bytes.
"$bin" simulate --bursts 4 --images 120 --pixels 16 --distance 0.03 --fluence 2e13 -o "$tmp/pin" --quiet > /dev/null 2>&1
pois=("${small[@]}" --model poisson --refresh-images 60)
mkdir -p "$tmp/pa" "$tmp/pb"
check "Poisson, uninterrupted" 0 bash -c 'cd "$0/pa" && "$1" watch ../pin -o out --stop-after-idle 0.3 "${@:2}"' "$tmp" "$bin" "${pois[@]}" --quiet 0
expect "Poisson: later bursts examine a share of the images" grep -q "examining [0-9]* of [0-9]* images" <<< "$LAST_OUT"
expect "Poisson: four feedback lines" bash -c "[ \$(wc -l < '$tmp/pa/out/feedback.jsonl') -eq 4 ]"
(cd "$tmp/pb" && exec "$bin" watch ../pin -o out --stop-after-idle 30 "${pois[@]}" > /dev/null 2>&1) &
pid=$!
pids+=("$pid")
for _ in $(seq 1 600); do
  [ -s "$tmp/pb/out/feedback.jsonl" ] && [ "$(wc -l < "$tmp/pb/out/feedback.jsonl")" -ge 2 ] && break
  sleep 0.05
done
sleep 0.2 # into the third burst, the first with kept probabilities read back
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
check "Poisson: restart after SIGKILL" 0 bash -c 'cd "$0/pb" && "$1" watch ../pin -o out --stop-after-idle 0.3 "${@:2}"' "$tmp" "$bin" "${pois[@]}"
for f in density.mrc results.h5 state/half1.00004.h5 state/half2.00004.h5; do
  expect "Poisson restart: $f as uninterrupted" cmp "$tmp/pa/out/$f" "$tmp/pb/out/$f"
done
check "another --refresh-images in the same OUTDIR is refused" 2 "$bin" watch "$tmp/pin" -o "$tmp/pa/out" \
  --stop-after-idle 0.3 "${small[@]}" --model poisson --refresh-images 30
expect "another --refresh-images: said which" grep -q "refresh-images 60" <<< "$LAST_OUT"
check "--refresh-images takes a count or all" 2 "$bin" watch "$tmp/pin" -o "$tmp/pz" --refresh-images many
finish
