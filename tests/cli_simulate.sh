#!/usr/bin/env bash
# spinifel simulate: outputs, determinism, and bad input. Usage: cli_simulate.sh SPINIFEL
set -u
bin="$1"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
pass=0 fails=0 LAST=""
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }
# expect NAME RC [one-line] -- COMMAND...
expect() {
  local name="$1" want="$2" oneline="$3"; shift 4
  local out rc
  out="$("$@" 2>&1 >/dev/null)"; rc=$?
  LAST="$out"
  if [ "$rc" -ne "$want" ]; then bad "$name: exit $rc, expected $want: $out"; return; fi
  if [ "$oneline" = one-line ] && [ "$(printf '%s\n' "$out" | wc -l)" -ne 1 ]; then bad "$name: error is not one line: $out"; return; fi
  ok "$name"
}
sim="$bin simulate --images 40 --pixels 24 --atoms 300"
expect "simulate the phantom" 0 any -- $sim -o "$dir/a.h5"
[ -s "$dir/a.h5" ] && [ -s "$dir/a.truth.mrc" ] && ok "dataset and reference map written" || bad "outputs missing"
expect "same seed, one thread" 0 any -- $sim -o "$dir/b.h5" --threads 1
cmp -s "$dir/a.h5" "$dir/b.h5" && ok "same seed gives the same bytes whatever the threads" || bad "thread count changed the file"
expect "another seed" 0 any -- $sim -o "$dir/c.h5" --seed 2
cmp -s "$dir/a.h5" "$dir/c.h5" && bad "another seed gave the same file" || ok "another seed gives other images"
expect "no output is a usage error" 2 one-line -- $sim
expect "a non-number is a usage error" 2 one-line -- $sim -o "$dir/d.h5" --images ten
expect "out-of-range value" 2 one-line -- $sim -o "$dir/d.h5" --energy -5
expect "unknown option" 2 one-line -- $sim -o "$dir/d.h5" --frobnicate 3
expect "missing PDB file" 1 one-line -- $sim -o "$dir/d.h5" --pdb "$dir/none.pdb"
printf 'ATOM      1  CA  ALA A   1      1.00x   2.000   3.000  1.00 20.00           C\n' > "$dir/bad.pdb"
expect "malformed PDB" 1 one-line -- $sim -o "$dir/d.h5" --pdb "$dir/bad.pdb"
expect "unwritable output" 1 one-line -- $sim -o "$dir/no/such/dir/d.h5"
ls "$dir" | grep -q '^d\.h5' && bad "a failed run left a file" || ok "failed runs leave no file"
ls "$dir" | grep -q 'tmp' && bad "temporary files left" || ok "no temporary files left"
# Progress: stderr is captured here, so timestamped lines (every tenth); --quiet: none.
expect "progress into a file" 0 any -- $bin simulate --images 300 --pixels 16 -o "$dir/p.h5"
[ "$(printf '%s\n' "$LAST" | grep -cE '^\[[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8}\] simulate +[0-9]+% [0-9]+/300 images')" -ge 1 ] &&
  ok "progress: timestamped lines" || bad "progress: no timestamped lines: $LAST"
expect "--quiet" 0 any -- $bin simulate --images 300 --pixels 16 -o "$dir/q.h5" --quiet
[ -z "$LAST" ] && ok "--quiet: nothing on stderr" || bad "--quiet printed: $LAST"
# --bursts: N files in a folder, the images of one run of N x --images split in order.
expect "bursts" 0 any -- $bin simulate --bursts 3 --images 50 --pixels 16 --quiet -o "$dir/stream"
[ "$(ls "$dir/stream")" = "$(printf 'burst_0001.h5\nburst_0002.h5\nburst_0003.h5')" ] && ok "bursts: three files, nothing else" ||
  bad "bursts: $(ls "$dir/stream")"
expect "the same images in one file" 0 any -- $bin simulate --images 150 --pixels 16 --quiet -o "$dir/whole.h5"
if command -v h5dump > /dev/null; then
  # Image 149 of the whole run is the last image of the third burst, and only those.
  img() { h5dump -d /intensities -s "$2,0,0,0" -c "1,1,16,16" "$1" | sed -n '/DATA {/,/}/p' | sed 's/([0-9, ]*)://'; }
  [ "$(img "$dir/whole.h5" 149)" = "$(img "$dir/stream/burst_0003.h5" 49)" ] && ok "bursts: the third's last image is the run's 150th" ||
    bad "bursts: the third's last image is not the run's 150th"
  [ "$(img "$dir/whole.h5" 148)" != "$(img "$dir/stream/burst_0003.h5" 49)" ] && ok "bursts: ... and not its 149th" ||
    bad "bursts: the comparison cannot tell images apart"
else
  ok "bursts: image contents not compared (no h5dump)"
fi
expect "--bursts with --emc is a usage error" 2 one-line -- $bin simulate --bursts 2 --images 5 --pixels 16 -o "$dir/s2" --emc "$dir/x.emc"
expect "--burst-delay without --bursts is a usage error" 2 one-line -- $sim -o "$dir/e.h5" --burst-delay 1
expect "a dotted --burst-prefix is a usage error" 2 one-line -- $bin simulate --bursts 2 --images 5 --pixels 16 -o "$dir/s3" --burst-prefix .x
echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
