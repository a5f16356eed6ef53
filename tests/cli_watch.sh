#!/usr/bin/env bash
# spinifel watch on a stream: bursts written into a folder (write, then rename) while watch
# runs are all ingested in name order; malformed and half-written files are reported by
# name and skipped; files under temporary names are never taken; the half sets' resolution
# improves with data; a burst with other photon counts is flagged; the outputs are
# rewritten after each burst. Usage: cli_watch.sh SPINIFEL
set -u
bin="$1"
source "$(dirname "$0")/lib_cli.sh"
tmp="$(mktemp -d /tmp/spf_cli_watchXXXXXX)"
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; [ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
mkdir -p "$tmp/in"
sim=(--pixels 24 --distance 0.03 --no-noise --quiet)

# Noise-free 24 x 24 images, each half started from the true orientations of a first
# burst of 40 images (generation 0 only: every later image, and every later generation,
# is matched against the model): the images' number, not the search from random
# orientations, limits the half sets here, so the resolution must improve as they come.
# Nothing is left to settle (--settled-fraction 1: the trend from the first burst): on
# 2,000 references a few hundred 24 x 24 images keep changing 8-24% of their
# orientations between neighbouring references from one generation to the next.
"$bin" watch "$tmp/in" -o "$tmp/out" --M 19 --refs 2000 --refs-start 0 --soft-gens 0 --phase-cycles 5 --threads 2 \
  --generations 3 --start-from-truth 1 --refine-generations 2 --poll 0.1 --target-resolution 15 --align-rotations 1000 \
  --settled-fraction 1 \
  --stop-after-idle 120 > "$tmp/watch.log" 2>&1 &
pid=$!
pids+=("$pid")
sleep 0.3
"$bin" simulate --bursts 1 --burst-prefix a_ --seed 5 --images 40 "${sim[@]}" -o "$tmp/in" > /dev/null 2>&1
# Not a dataset, and a truncated one, each renamed into place: reported and skipped.
printf 'this is not an HDF5 file\n' > "$tmp/in/.a_0002.h5.part" && mv "$tmp/in/.a_0002.h5.part" "$tmp/in/a_0002.h5"
head -c 3000 "$tmp/in/a_0001.h5" > "$tmp/in/.cut" && mv "$tmp/in/.cut" "$tmp/in/a_0003.h5"
# Temporary names a writer uses: never taken.
printf 'partial' > "$tmp/in/.hidden.h5"
printf 'partial' > "$tmp/in/b_0009.h5.tmp.1234"
printf 'partial' > "$tmp/in/b_0009.h5.part"
"$bin" simulate --bursts 3 --burst-prefix b_ --images 200 --burst-delay 0.5 "${sim[@]}" -o "$tmp/in" > /dev/null 2>&1
# Five times the fluence: the same images, other photon counts.
"$bin" simulate --bursts 1 --burst-prefix c_ --seed 9 --images 60 --fluence 5e12 "${sim[@]}" -o "$tmp/in" > /dev/null 2>&1
for _ in $(seq 1 1200); do
  [ -s "$tmp/out/feedback.jsonl" ] && [ "$(wc -l < "$tmp/out/feedback.jsonl")" -ge 5 ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
kill -TERM "$pid" 2>/dev/null
wait "$pid"
rc=$?
LAST_OUT="$(cat "$tmp/watch.log")"
expect "watch ends with exit 0 on SIGTERM (got $rc)" test "$rc" -eq 0
fb="$tmp/out/feedback.jsonl"
expect "five bursts ingested, one line each" bash -c "[ \$(wc -l < '$fb') -eq 5 ]"
expect "in name order" bash -c "[ \"\$(grep -o '\"file\":\"[^\"]*\"' '$fb' | cut -d'\"' -f4 | tr '\n' ' ')\" = 'a_0001.h5 b_0001.h5 b_0002.h5 b_0003.h5 c_0001.h5 ' ]"
expect "the malformed file is reported by name and skipped" grep -q "skipped a_0002.h5" "$tmp/watch.log"
expect "the truncated file is reported by name and skipped" grep -q "skipped a_0003.h5" "$tmp/watch.log"
expect "temporary names are never taken" bash -c "! grep -q -e hidden -e b_0009 '$tmp/watch.log' '$fb'"
expect "images counted" bash -c "grep -q '\"images\":640,' '$fb' && grep -q '\"images\":700,' '$fb'"
res() { sed -n "${1}p" "$fb" | grep -o '"resolution_A":[0-9.]*' | cut -d: -f2; }
# One burst's FSC 0.5 moves by several A with the phasing (a change in the last bits of the
# NUFFT moved burst 4's from 19.4 to 22.3 A): the better of bursts 3 and 4 (440 and 640
# images) against burst 1 (40), and the half maps' correlation, which moves less.
r1=$(res 1); r3=$(res 3); r4=$(res 4)
cor() { sed -n "${1}p" "$fb" | grep -o '"halves_correlation":[0-9.]*' | cut -d: -f2; }
c1=$(cor 1); c4=$(cor 4)
expect "the half sets' resolution improves with data: $r1 A after 40 images, $r3 and $r4 A after 440 and 640" \
  awk -v a="$r1" -v b="$r3" -v c="$r4" 'BEGIN { m = b < c ? b : c; exit !(a > 0 && m > 0 && m < 0.85 * a) }'
# The data resolution (the halves' intensities per shell, no phasing): 25.2 A after 40
# images, 21.8 and 22.8 A after 240 and 440, the grid's Nyquist (13.5 A) after 640 here.
dres() { sed -n "${1}p" "$fb" | grep -o '"data_resolution_A":[0-9.]*' | cut -d: -f2; }
d1=$(dres 1); d3=$(dres 3); d4=$(dres 4)
expect "every line gives the data resolution" bash -c "[ \$(grep -c '\"data_resolution_A\":[0-9]' '$fb') -eq 5 ]"
expect "the data resolution improves with data: $d1 A after 40 images, $d3 and $d4 A after 440 and 640" \
  awk -v a="$d1" -v b="$d3" -v c="$d4" 'BEGIN { m = b < c ? b : c; exit !(a > 0 && m > 0 && m < 0.85 * a) }'
expect "the half maps agree better with more data: correlation $c1 after 40 images, $c4 after 640" \
  awk -v a="$c1" -v b="$c4" 'BEGIN { exit !(a > 0 && b > a + 0.02) }'
expect "a projection for the target after the fourth burst (uncertain counts: the count and its range are given)" \
  bash -c "sed -n 4p '$fb' | grep -qE '\"projection\":\\{\"target_A\":15,\"of\":\"data_resolution\",\"status\":\"(projected|reached|uncertain)\",\"images\":[0-9.e+]+'"
expect "the trend from the first burst" bash -c "sed -n 4p '$fb' | grep -q '\"from_burst\":1[,}]'"
expect "no photon warning on bursts alike" bash -c "! head -4 '$fb' | grep -q photons_differ"
expect "the burst with five times the photons is flagged" bash -c "sed -n 5p '$fb' | grep -q '\"warnings\":\\[[^]]*\"photons_differ\"'"
expect "the flag is said on stderr" grep -q "warning: c_0001.h5" "$tmp/watch.log"
for f in density.mrc results.h5 fsc_halves.csv report.html resolution.png fsc.png density.png intensity.png config.ini; do
  expect "writes $f" test -s "$tmp/out/$f"
done
expect "report.html refreshes itself and shows the trend" \
  bash -c "grep -q 'http-equiv=\"refresh\"' '$tmp/out/report.html' && grep -q 'resolution.png' '$tmp/out/report.html'"
expect "report.html lists the skipped files" grep -q "a_0002.h5" "$tmp/out/report.html"
expect "no temporary files left" bash -c "! (ls '$tmp/out'; ls '$tmp/out/state') | grep -q tmp"
expect "the feedback names the skipped files" bash -c "sed -n 2p '$fb' | grep -q '\"skipped\":\[\"a_0002.h5\",\"a_0003.h5\"\]'"
finish
