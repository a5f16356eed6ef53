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

# The same counts in both files: the HDF5 images as raw float32 (h5dump), the EMC lists
# decoded by hand (Python's struct: little-endian int32, 1024-byte header).
if command -v h5dump > /dev/null && command -v python3 > /dev/null; then
  h5dump -d intensities -b LE -o "$tmp/d.bin" "$tmp/d.h5" > /dev/null
  check "EMC counts equal the HDF5 images" 0 python3 - "$tmp/d.emc" "$tmp/d.bin" <<'EOF'
import struct, sys
emc = open(sys.argv[1], 'rb').read()
n, npix, kind = struct.unpack_from('<3i', emc, 0)
assert kind == 0 and len(emc) >= 1024
ones = struct.unpack_from('<%di' % n, emc, 1024)
multi = struct.unpack_from('<%di' % n, emc, 1024 + 4 * n)
at = 1024 + 8 * n
po = struct.unpack_from('<%di' % sum(ones), emc, at); at += 4 * sum(ones)
pm = struct.unpack_from('<%di' % sum(multi), emc, at); at += 4 * sum(multi)
cm = struct.unpack_from('<%di' % sum(multi), emc, at); at += 4 * sum(multi)
assert at == len(emc), 'length'
raw = open(sys.argv[2], 'rb').read()
img = struct.unpack('<%df' % (len(raw) // 4), raw)
assert len(img) == n * npix, (len(img), n, npix)
o = m = 0
photons = 0
for d in range(n):
    dense = [0.0] * npix
    for k in range(ones[d]): dense[po[o + k]] += 1
    for k in range(multi[d]): dense[pm[m + k]] += cm[m + k]
    o += ones[d]; m += multi[d]
    assert dense == list(img[d * npix:(d + 1) * npix]), 'frame %d' % d
    photons += sum(dense)
assert photons > 0
print('%d frames, %d photons, identical' % (n, photons))
EOF
else
  echo "skip: h5dump or python3 missing (EMC against HDF5 counts)"
fi

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

pdb="${SPINIFEL_SHARED_DATA:-$(dirname "$0")/../../shared/data}/2cex.pdb"
if [ -r "$pdb" ]; then
  check "2cex to EMC" 0 "$bin" simulate --pdb "$pdb" --pixels 33 --distance 0.53 --beamstop 0.00273 --fluence 8e13 \
    --images 20 --emc "$tmp/c.emc" --threads 2
else
  echo "skip: 2cex.pdb not found ($pdb)"
fi
finish
