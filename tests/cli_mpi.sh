#!/usr/bin/env bash
# The distributed reconstruction under mpirun with 2 and 3 ranks (tests/test_mpi.c);
# skipped cleanly (77) when mpirun or the MPI build is absent. Usage: cli_mpi.sh SPINIFEL
set -u
dir="$(dirname "$1")"
command -v mpirun > /dev/null || { echo "skip: mpirun not found"; exit 77; }
[ -x "$dir/test_mpi" ] || { echo "skip: test_mpi not built"; exit 77; }
fails=0
for np in 2 3; do
  out="$(OMP_NUM_THREADS=1 mpirun --oversubscribe --allow-run-as-root -np "$np" "$dir/test_mpi" --ranks "$np" 2>&1)"; rc=$?
  if [ "$rc" -eq 77 ]; then echo "skip: built without MPI"; exit 77; fi
  if [ "$rc" -ne 0 ]; then echo "FAIL $np ranks (exit $rc): $out"; fails=$((fails + 1)); else echo "ok   $np ranks: $(echo "$out" | grep ranks:)"; fi
done
[ "$fails" -eq 0 ]
