#!/usr/bin/env bash
# The pictures and report.html of a reconstruction (cli_report_browser.sh loads the
# report in a browser). Usage: cli_report.sh SPINIFEL
set -u
bin="$1"
fails=0
passed=0
tmp="$(mktemp -d /tmp/spf_cli_reportXXXXXX)"
trap 'rm -rf "$tmp"' EXIT
ok() { echo "ok   $1"; passed=$((passed + 1)); }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }
"$bin" simulate --images 200 --pixels 16 --distance 0.03 --no-noise -o "$tmp/d.h5" > /dev/null 2>&1
if "$bin" reconstruct "$tmp/d.h5" -o "$tmp/r" --M 15 --refs 300 --refs-start 0 --soft-k 8 --soft-gens 1 \
     --phase-cycles 2 --generations 2 --threads 2 --pictures-each 1 > "$tmp/out.txt" 2>&1; then ok "reconstruct"; else bad "reconstruct: $(cat "$tmp/out.txt")"; fi
for f in density intensity gallery convergence orientation_error density_gen000 density_gen001; do
  p="$tmp/r/$f.png"
  # A PNG: its signature, and more than a blank canvas's few hundred bytes.
  if [ -s "$p" ] && [ "$(head -c 8 "$p" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] && [ "$(stat -c %s "$p")" -gt 2000 ]; then
    ok "$f.png written"
  else
    bad "$f.png missing or too small"
  fi
done
if grep -q '<img src="density.png"' "$tmp/r/report.html" && grep -q "refs = 300" "$tmp/r/report.html"; then
  ok "report.html shows the pictures and the settings"
else
  bad "report.html incomplete"
fi
# The orientation error's median and 90th percentile, as the demo prints them (the data hold the truth).
if grep -q 'median orientation error</th><td>[0-9.]*&deg;' "$tmp/r/report.html" &&
   grep -q '90th percentile orientation error</th><td>[0-9.]*&deg;' "$tmp/r/report.html"; then
  ok "report.html gives the median and 90th percentile errors"
else
  bad "report.html lacks the orientation errors"
fi
rm -f "$tmp/r/density.png"
if "$bin" plot "$tmp/r" > /dev/null 2>&1 && [ -s "$tmp/r/density.png" ]; then ok "plot draws them again"; else bad "plot"; fi
# A measured comparison with the truth (the demo writes vs_truth.txt) shows in the report.
printf 'correlation = 0.912\nhand = other\nfsc_0.5_A = 12.5\nfsc_0.143_A = 10.1\nnyquist_A = 9.9\n' > "$tmp/r/vs_truth.txt"
if "$bin" plot "$tmp/r" > /dev/null 2>&1 &&
   grep -q 'density vs the truth (after alignment)</th><td>correlation 0.912 (other hand); FSC 0.5 at 12.5 &Aring;, 0.143 at 10.1 &Aring; (Nyquist 9.9 &Aring;)' "$tmp/r/report.html"; then
  ok "report.html shows the comparison with the truth"
else
  bad "report.html: no comparison with the truth"
fi
# A new run in the same directory does not keep the earlier run's comparison.
"$bin" reconstruct "$tmp/d.h5" -o "$tmp/r" --M 15 --refs 300 --refs-start 0 --soft-k 8 --soft-gens 1 \
  --phase-cycles 2 --generations 1 --threads 2 --quiet > /dev/null 2>&1
if [ ! -e "$tmp/r/vs_truth.txt" ] && ! grep -q 'density vs the truth' "$tmp/r/report.html"; then
  ok "a new run drops the earlier comparison with the truth"
else
  bad "a new run kept the earlier run's comparison with the truth"
fi
if "$bin" plot "$tmp/none" > /dev/null 2>&1; then bad "plot of a missing directory succeeded"; else ok "plot of a missing directory fails"; fi
# A valid map that is not a cube (M x 1 x 1) read as M^3 overflowed the heap: refused, one line.
cp -r "$tmp/r" "$tmp/flat"
write_flat_mrc() { # header of a 15 x 1 x 1 float32 map, cell 15 A, then 15 floats
  { printf '\x0f\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00'
    head -c 12 /dev/zero
    printf '\x0f\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00'
    printf '\x00\x00\x70\x41\x00\x00\x80\x3f\x00\x00\x80\x3f'
    head -c 156 /dev/zero
    printf 'MAP \x44\x44\x00\x00'
    head -c 808 /dev/zero
    head -c 60 /dev/zero; } > "$1"
}
write_flat_mrc "$tmp/flat/density.mrc"
err="$("$bin" plot "$tmp/flat" 2>&1 > /dev/null)"; rc=$?
if [ "$rc" = 1 ] && [ "$(printf '%s\n' "$err" | wc -l)" = 1 ] && echo "$err" | grep -q "15 x 1 x 1"; then
  ok "plot of a non-cubic density.mrc: one line, exit 1"
else
  bad "plot of a non-cubic density.mrc: exit $rc: $err"
fi
echo "$passed passed, $fails failed"
[ "$fails" -eq 0 ]
