#!/usr/bin/env bash
# The distributed reconstruction under mpirun with 2, 3 and 4 ranks (tests/test_mpi.c), its
# command line (Euclidean and Poisson), checkpoints and resume, half sets;
# skipped cleanly (77) when mpirun or the MPI build is absent. Usage: cli_mpi.sh SPINIFEL
set -u
dir="$(dirname "$1")"
command -v mpirun > /dev/null || { echo "skip: mpirun not found"; exit 77; }
[ -x "$dir/test_mpi" ] || { echo "skip: test_mpi not built"; exit 77; }
fails=0
for np in 2 3 4; do
  out="$(OMP_NUM_THREADS=1 mpirun --oversubscribe --allow-run-as-root -np "$np" "$dir/test_mpi" --ranks "$np" 2>&1)"; rc=$?
  if [ "$rc" -eq 77 ]; then echo "skip: built without MPI"; exit 77; fi
  if [ "$rc" -ne 0 ]; then echo "FAIL $np ranks (exit $rc): $out"; fails=$((fails + 1)); else echo "ok   $np ranks: $(echo "$out" | grep -E "ranks, 5 generations|ranks, Poisson" | sed "s/^ *//")"; fi
done
# The command line under mpirun: each rank reads its share, rank 0 writes the outputs.
bin="$1"
tmp="$(mktemp -d /tmp/spf_cli_mpiXXXXXX)"
trap 'rm -rf "$tmp"' EXIT
"$bin" simulate --images 200 --pixels 16 --distance 0.03 --no-noise -o "$tmp/d.h5" > /dev/null 2>&1
args=(--M 15 --refs 1000 --refs-start 300 --refs-gens 4 --generations 4 --soft-gens 2 --threads 1)
one="$("$bin" reconstruct "$tmp/d.h5" -o "$tmp/one" "${args[@]}" 2>&1 | grep "orientation error")"
two="$(OMP_NUM_THREADS=1 timeout 300 mpirun --oversubscribe --allow-run-as-root -np 2 "$bin" reconstruct "$tmp/d.h5" \
       -o "$tmp/two" "${args[@]}" 2>&1 | grep "orientation error")"
if [ -n "$one" ] && [ "$one" = "$two" ] && cmp -s "$tmp/one/density.mrc" "$tmp/two/density.mrc"; then
  echo "ok   2 ranks on the command line: the same density.mrc bytes as one process; $two"
else echo "FAIL 2 ranks on the command line: '$two' vs one process '$one', or density.mrc differs"; fails=$((fails + 1)); fi
if [ -s "$tmp/two/results.h5" ] && [ -s "$tmp/two/report.html" ] && [ "$(wc -l < "$tmp/two/log.jsonl")" -eq 4 ]; then
  echo "ok   rank 0 wrote the outputs and one log"
else echo "FAIL outputs of the 2-rank run"; fails=$((fails + 1)); fi
errs() { grep -o '"median_orientation_error_deg":[0-9.]*' "$1" | tr '\n' ' '; }
if [ -n "$(errs "$tmp/one/log.jsonl")" ] && [ "$(errs "$tmp/one/log.jsonl")" = "$(errs "$tmp/two/log.jsonl")" ]; then
  echo "ok   the 2-rank log has every generation's orientation error, as one process's"
else echo "FAIL the 2-rank log's orientation errors: $(errs "$tmp/two/log.jsonl")"; fails=$((fails + 1)); fi
# Checkpoints under mpirun: stopped after 2 generations and resumed on 2 ranks, the
# run ends on the same bytes as the uninterrupted one, and so does a 3-rank resume.
mpi2=(env OMP_NUM_THREADS=1 timeout 300 mpirun --oversubscribe --allow-run-as-root -np 2)
fixed=(--M 15 --refs 600 --refs-start 0 --soft-gens 1 --threads 1) # a fixed grid: fractions changed are < 1
"${mpi2[@]}" "$bin" reconstruct "$tmp/d.h5" -o "$tmp/full" "${fixed[@]}" --generations 4 > /dev/null 2>&1
"${mpi2[@]}" "$bin" reconstruct "$tmp/d.h5" -o "$tmp/res" "${fixed[@]}" --generations 2 > /dev/null 2>&1
cp -r "$tmp/res" "$tmp/res3"
"${mpi2[@]}" "$bin" reconstruct --resume "$tmp/res" --generations 4 > /dev/null 2>&1
changed() { grep -o '"fraction_changed":[0-9.e-]*' "$1" | tr '\n' ' '; }
if [ -s "$tmp/full/checkpoint.h5" ] && cmp -s "$tmp/res/density.mrc" "$tmp/full/density.mrc" &&
   [ "$(wc -l < "$tmp/res/log.jsonl")" -eq 4 ] && [ "$(changed "$tmp/res/log.jsonl")" = "$(changed "$tmp/full/log.jsonl")" ]; then
  echo "ok   a 2-rank run resumed on 2 ranks ends on the uninterrupted run's bytes (changed: $(changed "$tmp/res/log.jsonl"))"
else echo "FAIL 2-rank resume"; fails=$((fails + 1)); fi
if OMP_NUM_THREADS=1 timeout 300 mpirun --oversubscribe --allow-run-as-root -np 3 "$bin" reconstruct \
     --resume "$tmp/res3" --generations 4 > /dev/null 2>&1 && [ "$(wc -l < "$tmp/res3/log.jsonl")" -eq 4 ] &&
   cmp -s "$tmp/res3/density.mrc" "$tmp/full/density.mrc"; then
  echo "ok   a 2-rank checkpoint resumed on 3 ranks ends on the uninterrupted 2-rank run's bytes"
else echo "FAIL 3-rank resume of a 2-rank checkpoint"; fails=$((fails + 1)); fi
# Half sets under mpirun: each half distributed over the ranks, rank 0 compares them;
# half 1 follows the one-process --half 1 run generation by generation.
"${mpi2[@]}" "$bin" reconstruct "$tmp/d.h5" -o "$tmp/halves" "${args[@]}" --half-sets > /dev/null 2>&1
"$bin" reconstruct "$tmp/d.h5" -o "$tmp/half1" "${args[@]}" --half 1 > /dev/null 2>&1
if [ -s "$tmp/halves/fsc_halves.csv" ] && [ -s "$tmp/halves/half2/density.mrc" ] &&
   [ -n "$(errs "$tmp/half1/log.jsonl")" ] && [ "$(errs "$tmp/halves/half1/log.jsonl")" = "$(errs "$tmp/half1/log.jsonl")" ]; then
  echo "ok   --half-sets on 2 ranks: half 1 as one process's --half 1, FSC written"
else echo "FAIL --half-sets on 2 ranks: $(errs "$tmp/halves/half1/log.jsonl")"; fails=$((fails + 1)); fi
# The Poisson model under mpirun: photon counts (about 45 an image), 2 ranks, the same
# density.mrc bytes and per-generation figures as one process.
"$bin" simulate --images 200 --pixels 16 --distance 0.03 --fluence 1e13 --threads 1 -o "$tmp/p.h5" > /dev/null 2>&1
pargs=(--model poisson --M 15 --refs 300 --generations 4 --threads 1)
"$bin" reconstruct "$tmp/p.h5" -o "$tmp/pone" "${pargs[@]}" > /dev/null 2>&1
"${mpi2[@]}" "$bin" reconstruct "$tmp/p.h5" -o "$tmp/ptwo" "${pargs[@]}" > /dev/null 2>&1
figs() { grep -o '"model":"[a-z]*"\|"beta":[^,]*\|"mean_entropy":[^,]*\|"median_loglik_gap":[^,]*\|"fraction_changed":[^,]*' "$1" | tr '\n' ' '; }
if [ -s "$tmp/pone/density.mrc" ] && cmp -s "$tmp/pone/density.mrc" "$tmp/ptwo/density.mrc" &&
   [ "$(wc -l < "$tmp/ptwo/log.jsonl")" -eq 4 ] && grep -q '"model":"poisson"' "$tmp/ptwo/log.jsonl" &&
   [ "$(figs "$tmp/pone/log.jsonl")" = "$(figs "$tmp/ptwo/log.jsonl")" ]; then
  echo "ok   --model poisson on 2 ranks: the same density.mrc bytes and log figures as one process"
else echo "FAIL --model poisson on 2 ranks: $(figs "$tmp/ptwo/log.jsonl") vs one process $(figs "$tmp/pone/log.jsonl")"; fails=$((fails + 1)); fi
# A bad input ends every rank, with an error, without hanging.
if OMP_NUM_THREADS=1 timeout 120 mpirun --oversubscribe --allow-run-as-root -np 2 "$bin" reconstruct "$tmp/none.h5" \
     -o "$tmp/bad" > /dev/null 2>&1; then echo "FAIL a missing file succeeded"; fails=$((fails + 1))
else
  rc=$?
  if [ "$rc" -eq 124 ]; then echo "FAIL a missing file hung"; fails=$((fails + 1)); else echo "ok   a missing file ends all ranks (exit $rc)"; fi
fi
# watch under mpirun: rank 0 polls and writes, every rank refines each half with its share
# of the examined images; the Poisson model with kept probabilities (--refresh-images 40)
# ends on the same bytes as one process, and a malformed burst is skipped by every rank.
"$bin" simulate --bursts 3 --images 100 --pixels 16 --distance 0.03 --fluence 2e13 --threads 1 -o "$tmp/win" --quiet \
  > /dev/null 2>&1
printf 'not a burst\n' > "$tmp/win/burst_0002b.h5"
wargs=(--model poisson --M 13 --refs 300 --generations 3 --refine-generations 2 --soft-gens 1 --phase-cycles 3
       --align-rotations 300 --refresh-images 40 --poll 0.05 --stop-after-idle 0.3 --threads 1)
mkdir -p "$tmp/w1" "$tmp/w2"
(cd "$tmp/w1" && "$bin" watch ../win -o out "${wargs[@]}" > ../w1.log 2>&1)
(cd "$tmp/w2" && "${mpi2[@]}" "$bin" watch ../win -o out "${wargs[@]}" > ../w2.log 2>&1); wrc=$?
same=1
for f in density.mrc results.h5 fsc_halves.csv state/half1.00003.h5 state/half2.00003.h5; do
  cmp -s "$tmp/w1/out/$f" "$tmp/w2/out/$f" || same=0
done
if [ "$wrc" -eq 0 ] && [ "$same" -eq 1 ] && [ "$(wc -l < "$tmp/w2/out/feedback.jsonl")" -eq 3 ] &&
   grep -q "examining" "$tmp/w2.log" && [ "$(grep -c "skipped burst_0002b.h5" "$tmp/w2.log")" -eq 1 ]; then
  echo "ok   watch on 2 ranks: the same bytes as one process (3 bursts, kept probabilities), one skip line"
else echo "FAIL watch on 2 ranks (exit $wrc, same bytes $same): $(tail -3 "$tmp/w2.log")"; fails=$((fails + 1)); fi
[ "$fails" -eq 0 ]
