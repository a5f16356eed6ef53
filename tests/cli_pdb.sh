#!/usr/bin/env bash
# A real structure from the Protein Data Bank (2cex, the project's shared test data)
# through simulate, to HDF5 and to EMC photons. A skip (77) when the file is absent:
# SPINIFEL_SHARED_DATA names its folder (CTest sets it). Usage: cli_pdb.sh SPINIFEL
set -u
bin="$1"
source "$(dirname "$0")/lib_cli.sh"
pdb="${SPINIFEL_SHARED_DATA:-$(dirname "$0")/../../shared/data}/2cex.pdb"
[ -r "$pdb" ] || { echo "skip: 2cex.pdb not found ($pdb)"; exit 77; }
tmp="$(mktemp -d /tmp/spf_cli_pdbXXXXXX)"
trap 'rm -rf "$tmp"' EXIT
check "simulate 2cex" 0 "$bin" simulate --pdb "$pdb" --images 10 --pixels 32 -o "$tmp/e.h5" --quiet
expect "2cex: dataset and reference map" test -s "$tmp/e.h5" -a -s "$tmp/e.truth.mrc"
check "simulate 2cex again" 0 "$bin" simulate --pdb "$pdb" --images 10 --pixels 32 -o "$tmp/f.h5" --quiet
expect "2cex: the same seed, the same bytes" cmp -s "$tmp/e.h5" "$tmp/f.h5"
check "2cex to EMC photons" 0 "$bin" simulate --pdb "$pdb" --pixels 33 --distance 0.53 --beamstop 0.00273 \
  --fluence 8e13 --images 20 --emc "$tmp/c.emc" --threads 2 --quiet
expect "2cex: photons and detector" test -s "$tmp/c.emc" -a -s "$tmp/c.det.dat"
finish
