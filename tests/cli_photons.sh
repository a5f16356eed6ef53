#!/usr/bin/env bash
# EMC sparse photons from the command line: simulate --emc, reconstruct DATA.emc --detector.
# Usage: cli_photons.sh SPINIFEL
set -u
bin="$1"
source "$(dirname "$0")/lib_cli.sh"
tmp="$(mktemp -d /tmp/spf_cli_emcXXXXXX)"
trap 'rm -rf "$tmp"' EXIT

sim=("$bin" simulate --images 50 --pixels 16 --distance 0.03 --beamstop 0.01)
small=(--generations 2 --refs 200 --refs-start 0 --M 15 --soft-k 8 --phase-cycles 2 --threads 2)

check "simulate HDF5 and EMC" 0 "${sim[@]}" -o "$tmp/d.h5" --emc "$tmp/d.emc"
expect "photons, detector file, dataset" test -s "$tmp/d.emc" -a -s "$tmp/d.det.dat" -a -s "$tmp/d.h5"
expect "no temporary files left" bash -c "! ls '$tmp' | grep -q tmp"
expect "detector header: EMC's three numbers, then spinifel's" \
  grep -qE '^256 [0-9.e+-]+ [0-9.e+-]+ wavelength_m=[0-9.e+-]+ pixel_size_m=[0-9.e+-]+ nx=16 ny=16$' <(head -1 "$tmp/d.det.dat")
expect "detector: one line per pixel" bash -c "[ \$(wc -l < '$tmp/d.det.dat') -eq 257 ]"

check "EMC only (no HDF5)" 0 "${sim[@]}" --emc "$tmp/e.emc" --emc-detector "$tmp/e.det.h5"
expect "EMC only: the same photons, bytes equal" cmp -s "$tmp/d.emc" "$tmp/e.emc"
expect "EMC only: HDF5 detector, reference map, no dataset" test -s "$tmp/e.det.h5" -a -s "$tmp/e.truth.mrc" -a ! -e "$tmp/e.h5"
check "--emc refuses expected counts" 2 "${sim[@]}" --emc "$tmp/f.emc" --no-noise
expect "--no-noise: one line" one_line
check "--emc-detector needs --emc" 2 "${sim[@]}" -o "$tmp/f.h5" --emc-detector "$tmp/f.dat"
check "unwritable EMC output" 1 "${sim[@]}" --emc "$tmp/no/such/f.emc"
expect "unwritable: one line" one_line
expect "failed runs leave no files" bash -c "! ls '$tmp' | grep -q '^f\\.'"

# Reconstruction from the sparse photons.
check "reconstruct DATA.emc --detector" 0 "$bin" reconstruct "$tmp/d.emc" --detector "$tmp/d.det.dat" -o "$tmp/r" "${small[@]}"
for f in density.mrc results.h5 log.jsonl config.ini checkpoint.h5 gallery.png; do
  expect "writes $f" test -s "$tmp/r/$f"
done
expect "configuration names the detector" grep -qx "detector = $tmp/d.det.dat" "$tmp/r/config.ini"
check "resume from EMC photons" 0 "$bin" reconstruct --resume "$tmp/r" --generations 3 --threads 2
check "reconstruct from the HDF5 detector" 0 "$bin" reconstruct "$tmp/d.emc" --detector "$tmp/e.det.h5" -o "$tmp/r2" "${small[@]}"
check "HDF5 run" 0 "$bin" reconstruct "$tmp/d.h5" -o "$tmp/r3" "${small[@]}"
expect "HDF5 runs' configuration has no detector key" bash -c "! grep -q '^detector' '$tmp/r3/config.ini'"

check "EMC without its detector" 1 "$bin" reconstruct "$tmp/d.emc" -o "$tmp/x" "${small[@]}"
expect "without detector: one line that says so" bash -c "[ \$(echo '$LAST_OUT' | wc -l) -eq 1 ] && echo '$LAST_OUT' | grep -q detector"
"$bin" simulate --images 5 --pixels 12 --emc "$tmp/g.emc" > /dev/null 2>&1
check "detector of another size" 1 "$bin" reconstruct "$tmp/d.emc" --detector "$tmp/g.det.dat" -o "$tmp/x" "${small[@]}"
expect "another size: one line" one_line
head -c $(( $(wc -c < "$tmp/d.emc") - 4 )) "$tmp/d.emc" > "$tmp/t.emc"
check "truncated photon file" 1 "$bin" reconstruct "$tmp/t.emc" --detector "$tmp/d.det.dat" -o "$tmp/x" "${small[@]}"
expect "truncated: one line" one_line
check "missing detector file" 1 "$bin" reconstruct "$tmp/d.emc" --detector "$tmp/none.dat" -o "$tmp/x" "${small[@]}"
head -n 100 "$tmp/d.det.dat" > "$tmp/t.dat"
check "truncated detector file" 1 "$bin" reconstruct "$tmp/d.emc" --detector "$tmp/t.dat" -o "$tmp/x" "${small[@]}"
expect "truncated detector: one line" one_line

finish
