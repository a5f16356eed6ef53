#!/usr/bin/env bash
# spinifel fsc: alignment and FSC of maps, against a map or the phantom; bad input. Usage: cli_fsc.sh SPINIFEL
set -u
bin="$1"
source "$(dirname "$0")/lib_cli.sh"
tmp="$(mktemp -d /tmp/spf_cli_fscXXXXXX)"
trap 'rm -rf "$tmp"' EXIT
# Reference maps of the phantom at 3 A and 4 A voxels.
"$bin" simulate --images 2 --pixels 8 --voxel 3 -o "$tmp/a.h5" --mrc "$tmp/p3.mrc" > /dev/null 2>&1
"$bin" simulate --images 2 --pixels 8 --voxel 4 -o "$tmp/b.h5" --mrc "$tmp/p4.mrc" > /dev/null 2>&1

check "a map against itself" 0 "$bin" fsc "$tmp/p3.mrc" "$tmp/p3.mrc" --rotations 500 -o "$tmp/self.csv"
expect "correlation 1" grep -q "correlation 1.0000" <<< "$LAST_OUT"
nyq="$(echo "$LAST_OUT" | sed -n 's/.*Nyquist \([0-9.]*\) A.*/\1/p')"
expect "FSC 0.5 at Nyquist" grep -q "FSC 0.5 at $nyq A" <<< "$LAST_OUT"
expect "curve written: header and one line per shell" bash -c "head -1 '$tmp/self.csv' | grep -qx 'shell,resolution_A,fsc' && [ \$(wc -l < '$tmp/self.csv') -gt 5 ]"
check "the phantom's map against the phantom" 0 "$bin" fsc "$tmp/p3.mrc" --phantom --rotations 500
corr="$(echo "$LAST_OUT" | sed -n 's/.*correlation \([0-9.]*\),.*/\1/p')"
expect "simulate's map is the reference density (correlation $corr > 0.99)" awk -v c="$corr" 'BEGIN { exit !(c > 0.99) }'

check "the curve as a picture" 0 "$bin" fsc "$tmp/p3.mrc" --phantom --rotations 200 --png "$tmp/fsc.png"
expect "picture written" bash -c "[ \$(stat -c %s '$tmp/fsc.png') -gt 2000 ]"
check "missing map" 1 "$bin" fsc "$tmp/none.mrc" --phantom
check "no reference" 2 "$bin" fsc "$tmp/p3.mrc"
check "two references" 2 "$bin" fsc "$tmp/p3.mrc" "$tmp/p3.mrc" --phantom
check "grids that differ" 2 "$bin" fsc "$tmp/p3.mrc" "$tmp/p4.mrc"
expect "grids that differ: one line" bash -c "[ \$(echo '$LAST_OUT' | wc -l) -eq 1 ]"
check "missing PDB" 1 "$bin" fsc "$tmp/p3.mrc" --pdb "$tmp/none.pdb"
check "unwritable curve" 1 "$bin" fsc "$tmp/p3.mrc" --phantom --rotations 50 -o "$tmp/no/dir/c.csv"
expect "no temporary file left" bash -c "! ls '$tmp' | grep -q tmp"
finish
