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
echo "$pass passed, $fails failed"
[ "$fails" -eq 0 ]
