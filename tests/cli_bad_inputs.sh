#!/usr/bin/env bash
# The bad-input suite: malformed files and argument lists for every command, each with
# the exit code it must give (2: usage, 1: bad input), a one-line message on stderr,
# no crash, no hang, no sanitizer report, and no output left behind. The cases are
# generated: every numeric option with every kind of bad number, every file argument
# with every kind of bad file. Usage: cli_bad_inputs.sh SPINIFEL
set -u
bin="$1"
dir="$(mktemp -d /tmp/spf_bad_XXXXXX)"
trap 'rm -rf "$dir"' EXIT
pass=0 fails=0 cases=0
# case NAME WANT_RC COMMAND...: exit code, one line on stderr, no crash or sanitizer report.
case_() {
  local name="$1" want="$2"; shift 2
  cases=$((cases + 1))
  local err rc
  err="$(timeout 120 "$@" 2>&1 > /dev/null)"; rc=$?
  local lines
  lines="$(printf '%s\n' "$err" | grep -c .)"
  if [ "$rc" -ne "$want" ]; then
    echo "FAIL $name: exit $rc, expected $want: $(printf '%s' "$err" | head -c 300)"; fails=$((fails + 1))
  elif [ "$lines" -ne 1 ]; then
    echo "FAIL $name: $lines lines on stderr: $(printf '%s' "$err" | head -c 300)"; fails=$((fails + 1))
  elif printf '%s' "$err" | grep -qE "Sanitizer|runtime error|Segmentation"; then
    echo "FAIL $name: sanitizer: $err"; fails=$((fails + 1))
  else
    pass=$((pass + 1))
  fi
}

# ---- Valid inputs to corrupt ----
"$bin" simulate --images 6 --pixels 12 --distance 0.03 --no-noise --atoms 200 -o "$dir/good.h5" > /dev/null 2>&1 ||
  { echo "FAIL cannot make the valid dataset"; exit 1; }
"$bin" reconstruct "$dir/good.h5" -o "$dir/run" --M 7 --refs 50 --refs-start 0 --soft-gens 0 --phase-cycles 1 \
  --generations 1 --threads 2 --images 6 > /dev/null 2>&1 || { echo "FAIL cannot make the valid run"; exit 1; }
good_mrc="$dir/run/density.mrc"

# ---- Bad numbers for every numeric option ----
bad_numbers=("abc" "" "nan" "inf" "-inf" "1e999" "-1e999" "-5" "12abc" "0x")
sim_opts=(--atoms --pixels --pixel-size --distance --energy --beamstop --images --fluence --jitter --background --seed
          --voxel --intensity-M --intensity-oversampling --compress --tol --threads)
for o in "${sim_opts[@]}"; do
  for v in "${bad_numbers[@]}"; do
    [ "$v" = "-5" ] && [ "$o" = "--seed" ] && continue # seeds are any integer
    case_ "simulate $o '$v'" 2 "$bin" simulate -o "$dir/x.h5" "$o" "$v"
  done
done
rec_opts=(--images --half --poisson-mean --beta-start --beta-min-spread --beta-max --beta-period --model-floor
          --update-fluence --positive-intensity --mask-dead --M --refs --refs-max --refs-start --refs-gens --ref-batch
          --generations --stop-fraction --pixel-weighting --res-start --res-gens --res-merge --soft-k --soft-tau
          --soft-gens --slice-merged --slice-phase-cycles --prior --continue-phasing --n-rho --rho-min --rho-max --phi --cg-iterations
          --cg-tol --merge-tol --slice-tol --preconditioner --phase-every --phase-cycles --phase-average --beta --start-from-truth
          --pictures-each --threads)
for o in "${rec_opts[@]}"; do
  for v in "abc" "nan" "1e999" "-5" "12abc"; do
    case_ "reconstruct $o '$v'" 2 "$bin" reconstruct "$dir/good.h5" -o "$dir/x" "$o" "$v"
  done
done
for o in --rotations --threads; do
  for v in "${bad_numbers[@]}"; do case_ "fsc $o '$v'" 2 "$bin" fsc "$good_mrc" --phantom "$o" "$v"; done
done
for v in "${bad_numbers[@]}"; do
  case_ "orientations --images '$v'" 2 "$bin" orientations "$dir/run/results.h5" "$dir/good.h5" --images "$v"
done

# ---- Argument lists ----
if "$bin" > /dev/null 2>&1; then echo "FAIL no command: exit 0"; fails=$((fails + 1)); else pass=$((pass + 1)); fi
cases=$((cases + 1)) # (prints the usage: several lines by design)
case_ "unknown command" 2 "$bin" frobnicate
for c in simulate reconstruct fsc orientations plot demo; do
  case_ "$c: unknown option" 2 "$bin" "$c" --frobnicate 3
done
for c in simulate reconstruct fsc orientations; do
  case_ "$c: option without its value" 2 "$bin" "$c" --threads
done
case_ "simulate: no output" 2 "$bin" simulate
case_ "reconstruct: no output" 2 "$bin" reconstruct "$dir/good.h5"
case_ "reconstruct: no data" 2 "$bin" reconstruct -o "$dir/x"
case_ "reconstruct: two datasets" 2 "$bin" reconstruct "$dir/good.h5" "$dir/run/results.h5" -o "$dir/x"
case_ "reconstruct: even M" 2 "$bin" reconstruct "$dir/good.h5" -o "$dir/x" --M 8
case_ "reconstruct: unknown model" 2 "$bin" reconstruct "$dir/good.h5" -o "$dir/x" --model maybe
case_ "reconstruct: --half 3" 2 "$bin" reconstruct "$dir/good.h5" -o "$dir/x" --half 3
case_ "fsc: one map" 2 "$bin" fsc "$good_mrc"
case_ "fsc: three maps" 2 "$bin" fsc "$good_mrc" "$good_mrc" "$good_mrc"
case_ "fsc: bad interpolation" 2 "$bin" fsc --intensity "$dir/run/results.h5" "$dir/run/results.h5" --interpolation cubic
case_ "orientations: one file" 2 "$bin" orientations "$dir/run/results.h5"
case_ "plot: no directory" 2 "$bin" plot

# ---- Bad files, for every file argument ----
printf '' > "$dir/empty"
printf 'hello\n' > "$dir/text"
head -c 3000 "$dir/good.h5" > "$dir/trunc.h5"
# Random bytes after a first line that is never INI (a PNG signature): 100 bytes of
# /dev/urandom alone read as a valid configuration about 1 time in 120 (a first byte of
# ';' or '#', a comment, and no newline after it): the CI's sanitizer run met one.
{ printf '\x89PNG\r\n\x1a\n'; head -c 92 /dev/urandom; } > "$dir/random"
head -c 1023 "$good_mrc" > "$dir/short.mrc"
mkdir -p "$dir/adir"
bad_files=("$dir/empty" "$dir/text" "$dir/trunc.h5" "$dir/random" "$dir/short.mrc" "$dir/adir" "$dir/missing"
           "$good_mrc")
for f in "${bad_files[@]}"; do
  n="$(basename "$f")"
  case_ "reconstruct data $n" 1 "$bin" reconstruct "$f" -o "$dir/x"
  case_ "orientations results $n" 1 "$bin" orientations "$f" "$dir/good.h5"
  case_ "orientations data $n" 1 "$bin" orientations "$dir/run/results.h5" "$f"
  case_ "simulate --pdb $n" 1 "$bin" simulate -o "$dir/x.h5" --pdb "$f"
  # A configuration that is not a file is an input error (1), one that is not INI a usage
  # error (2, as a bad flag); an empty one is valid (the defaults).
  case "$n" in
    missing|adir) case_ "reconstruct --config $n" 1 "$bin" reconstruct "$dir/good.h5" -o "$dir/x" --config "$f" ;;
    empty) ;;
    *) case_ "reconstruct --config $n" 2 "$bin" reconstruct "$dir/good.h5" -o "$dir/x" --config "$f" ;;
  esac
  if [ "$f" != "$good_mrc" ]; then
    case_ "fsc --intensity $n" 1 "$bin" fsc --intensity "$f" "$dir/run/results.h5"
    case_ "fsc map A $n" 1 "$bin" fsc "$f" "$good_mrc"
    case_ "fsc map B $n" 1 "$bin" fsc "$good_mrc" "$f"
  fi
done
case_ "reconstruct --resume of a file" 1 "$bin" reconstruct --resume "$dir/text"

# MRC headers that lie: every field a reader trusts, set to a bad value in a copy.
mrc_field() { # mrc_field OUT WORD BYTES(hex, little-endian)
  cp "$good_mrc" "$1"
  printf "$3" | dd of="$1" bs=1 seek=$((4 * $2)) conv=notrunc status=none
}
mrc_field "$dir/m_nx.mrc" 0 '\x00\x00\x00\x00'
mrc_field "$dir/m_neg.mrc" 1 '\xff\xff\xff\xff'
mrc_field "$dir/m_huge.mrc" 2 '\x00\x00\x00\x7f'
mrc_field "$dir/m_mode.mrc" 3 '\x01\x00\x00\x00'
mrc_field "$dir/m_cell0.mrc" 10 '\x00\x00\x00\x00'
mrc_field "$dir/m_cellnan.mrc" 10 '\x00\x00\xc0\x7f'
mrc_field "$dir/m_cellneg.mrc" 10 '\x00\x00\x80\xbf'
mrc_field "$dir/m_ext.mrc" 23 '\x00\x00\x10\x00'
mrc_field "$dir/m_label.mrc" 52 'XXXX'
for f in "$dir"/m_*.mrc; do
  n="$(basename "$f")"
  case_ "fsc map A $n" 1 "$bin" fsc "$f" "$good_mrc"
  case_ "fsc map $n --phantom" 1 "$bin" fsc "$f" --phantom
  cp -r "$dir/run" "$dir/prun"
  cp "$f" "$dir/prun/density.mrc"
  case_ "plot with $n" 1 "$bin" plot "$dir/prun"
  rm -rf "$dir/prun"
done

# PDB files: one bad field each.
atom() { printf 'ATOM      1  CA  ALA A   1    %8s%8s%8s%6s%6s           %-2s\n' "$@"; }
atom 1.000 2.000 3.000 1.00 20.00 C > "$dir/p_ok.pdb"
atom 1e300 2.000 3.000 1.00 20.00 C > "$dir/p_big.pdb"
atom nan 2.000 3.000 1.00 20.00 C > "$dir/p_nan.pdb"
atom 1.000 2.0x0 3.000 1.00 20.00 C > "$dir/p_junk.pdb"
atom 1.000 2.000 3.000 1e300 20.00 C > "$dir/p_occbig.pdb"
atom 1.000 2.000 3.000 -1.00 20.00 C > "$dir/p_occneg.pdb"
atom 1.000 2.000 3.000 1.00 inf C > "$dir/p_binf.pdb"
atom 1.000 2.000 3.000 1.00 20.00 Xx > "$dir/p_elem.pdb"
printf 'ATOM      1  CA  ALA A   1\n' > "$dir/p_short.pdb"
printf 'HEADER    nothing\nEND\n' > "$dir/p_none.pdb"
{ printf 'REMARK 350 BIOMOLECULE: 1\nREMARK 350 APPLY THE FOLLOWING TO CHAINS: A\n'
  printf 'REMARK 350   BIOMT1   1  1.000000  0.000000  0.000000        0.00000\n'
  cat "$dir/p_ok.pdb"; } > "$dir/p_biomt.pdb"
for f in "$dir"/p_*.pdb; do
  n="$(basename "$f")"
  [ "$n" = p_ok.pdb ] && continue
  case_ "simulate --pdb $n" 1 "$bin" simulate -o "$dir/x.h5" --images 2 --pixels 8 --pdb "$f" --assembly
  case_ "fsc --pdb $n" 1 "$bin" fsc "$good_mrc" --pdb "$f" --assembly
done

# INI files.
ini=("[reconstruct]\nrefs = many\n" "[reconstruct]\nnot a line\n" "[reconstruct]\nfrobnicate = 3\n"
     "[reconstruct]\nM = 8\n" "[reconstruct]\nM = \n" "[reconstruct\nM = 9\n" "[reconstruct]\nseed = 1e999\n")
for k in "${!ini[@]}"; do
  printf "${ini[$k]}" > "$dir/c$k.ini"
  case_ "reconstruct --config case $k" 2 "$bin" reconstruct "$dir/good.h5" -o "$dir/x" --config "$dir/c$k.ini"
done

# Outputs that cannot be written.
case_ "simulate into a missing directory" 1 "$bin" simulate -o "$dir/no/such/x.h5" --images 2 --pixels 8
mkdir -p "$dir/adir.h5"
case_ "simulate onto a directory" 1 "$bin" simulate -o "$dir/adir.h5" --images 2 --pixels 8
mkdir -p "$dir/ymap.truth.mrc" "$dir/yph.det.dat"
case_ "simulate: the default truth map's name is a directory" 1 "$bin" simulate -o "$dir/ymap.h5" --images 2 --pixels 8
case_ "simulate: the default EMC detector file's name is a directory" 1 "$bin" simulate --emc "$dir/yph.emc" --images 2 --pixels 8
[ ! -e "$dir/ymap.h5" ] && [ ! -e "$dir/yph.emc" ] || { echo "FAIL simulate wrote before finding its output was a directory"; fails=$((fails + 1)); }
case_ "simulate -o without .h5 (a dataset under another kind's name)" 2 "$bin" simulate -o "$dir/x.txt" --images 2 --pixels 8
case_ "simulate -o ending in a directory's dot" 2 "$bin" simulate -o "$dir/v1.h5/x" --images 2 --pixels 8
case_ "reconstruct into a file" 1 "$bin" reconstruct "$dir/good.h5" -o "$dir/text" --M 7 --refs 50 --generations 1

# Nothing written where the command failed.
left="$(ls "$dir" | grep -E '^x|\.tmp\.' || true)"
if [ -z "$left" ]; then pass=$((pass + 1)); else echo "FAIL failed commands left: $left"; fails=$((fails + 1)); fi
cases=$((cases + 1))
echo "$cases cases: $pass passed, $fails failed"
[ "$fails" -eq 0 ]
