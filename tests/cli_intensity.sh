#!/usr/bin/env bash
# spinifel simulate --intensity-out and fsc --intensity: the true intensity against a small
# reconstruction, on the grid and scale results.h5 states; bad input. Usage: cli_intensity.sh SPINIFEL
set -u
bin="$1"
source "$(dirname "$0")/lib_cli.sh"
tmp="$(mktemp -d /tmp/spf_cli_intXXXXXX)" || { echo "skip: no temporary directory"; exit 77; }
trap 'rm -rf "$tmp"' EXIT

# A beam stop of 0.008 1/A: the valid pixel nearest the beam sets the data's radius.
check "simulate with the true intensity" 0 "$bin" simulate --images 200 --pixels 16 --distance 0.03 --no-noise \
  --beamstop 0.008 --threads 2 -o "$tmp/d.h5" --intensity-out "$tmp/truth.h5" --intensity-M 15
expect "simulate reports the intensity grid" grep -q "wrote $tmp/truth.h5: intensity 15^3" <<< "$LAST_OUT"
check "reconstruct (tiny, from the true orientations)" 0 "$bin" reconstruct "$tmp/d.h5" -o "$tmp/run" --M 15 \
  --refs 300 --refs-start 0 --soft-k 8 --soft-gens 1 --phase-cycles 1 --generations 2 --start-from-truth 1 --threads 2

# The reconstruction against the truth (same grid: a voxel mismatch would be an error).
check "intensity shell correlation" 0 "$bin" fsc --intensity "$tmp/truth.h5" "$tmp/run/results.h5" -o "$tmp/c.csv" \
  --png "$tmp/c.png" --rotations 1000 --threads 2
out="$LAST_OUT"
corr="$(sed -n 's/.*), correlation \([0-9.]*\) (mean over shells.*/\1/p' <<< "$out")"
angle="$(sed -n 's/.* (\([0-9.]*\) deg, to .*/\1/p' <<< "$out")"
edge="$(sed -n 's/.*from the beam stop to the edge (shells [0-9]*-[0-9]*): \([0-9.]*\)$/\1/p' <<< "$out")"
expect "reconstruction correlates with the truth ($corr > 0.8)" awk -v c="$corr" 'BEGIN { exit !(c > 0.8 && c <= 1) }'
expect "frames agree from the true orientations (rotation $angle deg < 10)" awk -v a="$angle" 'BEGIN { exit !(a < 10) }'
expect "mean from the beam stop to the edge ($edge > 0.9)" awk -v c="$edge" 'BEGIN { exit !(c > 0.9 && c <= 1) }'
bs="$(sed -n 's/.*beam stop \([0-9.]*\) 1\/A.*/\1/p' <<< "$out")"
expect "beam stop from the data ($bs 1/A: 0.008 asked, the nearest valid pixel beyond)" \
  awk -v b="$bs" 'BEGIN { exit !(b >= 0.008 && b < 0.012) }'
expect "0.5 radius reported in 1/A and as a fraction of the corner" \
  grep -Eq "shell correlation (0.5 at|stays at or above 0.5 to the last shell,) [0-9.]+ 1/A \([0-9.]+ A\), [0-9.]+ of the corner radius" <<< "$out"
expect "curve: header and one line per shell (8)" \
  bash -c "head -1 '$tmp/c.csv' | grep -qx 'shell,s_inv_angstrom,fraction_of_corner,correlation,voxels' && [ \$(wc -l < '$tmp/c.csv') -eq 9 ]"
expect "curve: shells inside the beam stop have no voxels" grep -q '^1,[0-9.]*,[0-9.]*,nan,0$' "$tmp/c.csv"
expect "curve: s is the shell times the voxel, the fraction s / corner" \
  awk -F, 'NR == 3 { v = $2 } NR > 1 && $1 > 0 { if ($2 - $1 * v > 1e-5 || $1 * v - $2 > 1e-5) bad = 1; c = $2 / $3 } END { exit bad || !(c > 0.04 && c < 0.06) }' "$tmp/c.csv"
expect "curve picture written" bash -c "[ \$(stat -c %s '$tmp/c.png') -gt 2000 ]"

# A volume unrelated to the intensity (the density, read as an MRC intensity with the grid
# given by hand): correlates far less, even after the search picks its best rotation.
voxel="$(sed -n 's/.*grid 15^3 of \([0-9.]*\) 1\/A.*/\1/p' <<< "$out")"
corner="$(sed -n 's/.*corner \([0-9.]*\) 1\/A (shell.*/\1/p' <<< "$out")"
check "an unrelated volume" 0 "$bin" fsc --intensity "$tmp/truth.h5" "$tmp/run/density.mrc" --voxel-inv-angstrom "$voxel" \
  --corner-inv-angstrom "$corner" --rotations 1000 --threads 2
other="$(sed -n 's/.*), correlation \([0-9.]*\) (mean over shells.*/\1/p' <<< "$LAST_OUT")"
expect "the reconstruction ($corr) well above an unrelated volume ($other)" awk -v c="$corr" -v o="$other" 'BEGIN { exit !(c > o + 0.3) }'
check "trilinear interpolation" 0 "$bin" fsc --intensity "$tmp/truth.h5" "$tmp/run/results.h5" --interpolation trilinear \
  --rotations 1000 --threads 2
tri="$(sed -n 's/.*), correlation \([0-9.]*\) (mean over shells.*/\1/p' <<< "$LAST_OUT")"
expect "trilinear: said, and about the same figure ($tri, Fourier $corr)" \
  bash -c "grep -q 'trilinear), correlation' <<< \"\$0\" && awk -v a=$tri -v b=$corr 'BEGIN { exit !(a - b < 0.1 && b - a < 0.1) }'" "$LAST_OUT"
check "unknown interpolation" 2 "$bin" fsc --intensity "$tmp/truth.h5" "$tmp/truth.h5" --interpolation cubic
check "the truth against itself" 0 "$bin" fsc --intensity "$tmp/truth.h5" "$tmp/truth.h5" --rotations 500 --threads 2
expect "itself: correlation 1" grep -q "correlation 1.0000" <<< "$LAST_OUT"
expect "itself: never below 0.5" grep -q "stays at or above 0.5" <<< "$LAST_OUT"
check "intensity units" 0 "$bin" simulate --images 2 --pixels 16 --distance 0.03 --threads 2 -o "$tmp/u.h5" \
  --intensity-out "$tmp/photons.h5" --intensity-M 15 --intensity-unit photons-per-pixel

# Bad input: one line, exit 1; bad usage: exit 2.
check "help names --intensity" 0 "$bin" fsc --help
expect "help: --intensity A B" grep -q -- "--intensity A B" <<< "$LAST_OUT"
expect "help: the grid's figures for plain volumes" grep -q -- "--corner-inv-angstrom" <<< "$LAST_OUT"
check "one file" 2 "$bin" fsc --intensity "$tmp/truth.h5"
check "three files" 2 "$bin" fsc --intensity "$tmp/truth.h5" "$tmp/truth.h5" "$tmp/truth.h5"
check "an option of the density comparison" 2 "$bin" fsc --intensity "$tmp/truth.h5" "$tmp/truth.h5" --phantom
check "missing file" 1 "$bin" fsc --intensity "$tmp/truth.h5" "$tmp/none.h5"
expect "missing file: one line" one_line
check "HDF5 without an intensity (the dataset)" 1 "$bin" fsc --intensity "$tmp/truth.h5" "$tmp/d.h5"
expect "no intensity: one line" one_line
expect "no intensity: names the dataset" grep -q "no dataset 'intensity'" <<< "$LAST_OUT"
echo "not a volume" > "$tmp/text.h5"
check "neither HDF5 nor MRC" 1 "$bin" fsc --intensity "$tmp/truth.h5" "$tmp/text.h5"
expect "neither: one line" one_line
"$bin" simulate --images 2 --pixels 16 --distance 0.03 --threads 2 -o "$tmp/e.h5" --intensity-out "$tmp/t17.h5" \
  --intensity-M 17 > /dev/null 2>&1
check "grids of other sizes" 1 "$bin" fsc --intensity "$tmp/truth.h5" "$tmp/t17.h5"
expect "other sizes: one line" one_line
"$bin" simulate --images 2 --pixels 16 --distance 0.05 --threads 2 -o "$tmp/f.h5" --intensity-out "$tmp/far.h5" \
  --intensity-M 15 > /dev/null 2>&1
check "grids of other voxels" 1 "$bin" fsc --intensity "$tmp/truth.h5" "$tmp/far.h5"
expect "other voxels: one line" one_line
check "MRC without the grid's figures" 2 "$bin" fsc --intensity "$tmp/run/density.mrc" "$tmp/run/density.mrc"
expect "MRC without figures: one line" one_line
expect "MRC without figures: names the flags" grep -q -- "--voxel-inv-angstrom V --corner-inv-angstrom C" <<< "$LAST_OUT"
check "bad voxel value" 2 "$bin" fsc --intensity "$tmp/truth.h5" "$tmp/truth.h5" --voxel-inv-angstrom -1
check "unwritable curve" 1 "$bin" fsc --intensity "$tmp/truth.h5" "$tmp/truth.h5" --rotations 50 -o "$tmp/no/dir/c.csv"
check "simulate: even intensity size" 2 "$bin" simulate --images 2 -o "$tmp/x.h5" --intensity-out "$tmp/x_i.h5" --intensity-M 16
check "simulate: unknown unit" 2 "$bin" simulate --images 2 -o "$tmp/x.h5" --intensity-out "$tmp/x_i.h5" --intensity-unit kg
check "simulate: unwritable intensity" 1 "$bin" simulate --images 2 --pixels 16 -o "$tmp/x.h5" --intensity-out "$tmp/no/dir/i.h5"
expect "no temporary files left" bash -c "! find '$tmp' -name '*.tmp*' | grep -q ."
finish
