#!/usr/bin/env bash
# simulate --emc writes the same photon counts as its HDF5 dataset: the HDF5 images read
# as raw float32 by h5dump (Debian's hdf5-tools), the EMC lists decoded by hand in Python.
# A skip (77) without h5dump or python3. Usage: cli_photons_h5dump.sh SPINIFEL
set -u
bin="$1"
source "$(dirname "$0")/lib_cli.sh"
command -v h5dump > /dev/null || { echo "skip: h5dump not installed (hdf5-tools)"; exit 77; }
command -v python3 > /dev/null || { echo "skip: python3 not installed"; exit 77; }
tmp="$(mktemp -d /tmp/spf_cli_h5dumpXXXXXX)"
trap 'rm -rf "$tmp"' EXIT
check "simulate HDF5 and EMC" 0 "$bin" simulate --images 50 --pixels 16 --distance 0.03 --beamstop 0.01 \
  -o "$tmp/d.h5" --emc "$tmp/d.emc" --quiet
# The same counts in both files: the HDF5 images as raw float32 (h5dump), the EMC lists
# decoded by hand (Python's struct: little-endian int32, 1024-byte header).
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
finish
