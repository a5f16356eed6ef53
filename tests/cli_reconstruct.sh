#!/usr/bin/env bash
# spinifel reconstruct: bad input, outputs, configuration file, resume. Usage: cli_reconstruct.sh SPINIFEL
set -u
bin="$1"
source "$(dirname "$0")/lib_cli.sh"
tmp="$(mktemp -d /tmp/spf_cli_recXXXXXX)"
trap 'rm -rf "$tmp"' EXIT

"$bin" simulate --images 200 --pixels 16 --distance 0.03 --no-noise -o "$tmp/d.h5" > /dev/null 2>&1
small=(--M 15 --refs 300 --refs-start 0 --soft-k 8 --soft-gens 1 --phase-cycles 2 --threads 2)

check "no dataset is a usage error" 2 "$bin" reconstruct -o "$tmp/o"
check "missing file fails" 1 "$bin" reconstruct "$tmp/none.h5" -o "$tmp/o"
expect "missing file: one line" one_line
check "even M is a usage error" 2 "$bin" reconstruct "$tmp/d.h5" -o "$tmp/o" --M 20
check "unknown parameter is a usage error" 2 "$bin" reconstruct "$tmp/d.h5" -o "$tmp/o" --frobnicate 3
expect "unknown parameter: one line" one_line
check "value out of range" 2 "$bin" reconstruct "$tmp/d.h5" -o "$tmp/o" --refs -5
printf '[reconstruct]\nrefs = many\n' > "$tmp/bad.ini"
check "bad value in the configuration" 2 "$bin" reconstruct "$tmp/d.h5" -o "$tmp/o" --config "$tmp/bad.ini"
expect "bad configuration: one line naming the file" bash -c "[ \"\$(echo '$LAST_OUT' | wc -l)\" -eq 1 ] && echo '$LAST_OUT' | grep -q bad.ini"
printf '[reconstruct]\nnot a line\n' > "$tmp/bad2.ini"
check "malformed configuration" 2 "$bin" reconstruct "$tmp/d.h5" -o "$tmp/o" --config "$tmp/bad2.ini"
check "missing configuration" 1 "$bin" reconstruct "$tmp/d.h5" -o "$tmp/o" --config "$tmp/none.ini"
expect "missing configuration: one line naming it" bash -c "[ \"\$(echo '$LAST_OUT' | wc -l)\" -eq 1 ] && echo '$LAST_OUT' | grep -q none.ini"
check "a directory as the configuration" 1 "$bin" reconstruct "$tmp/d.h5" -o "$tmp/o" --config "$tmp"
expect "a directory as the configuration: said so" bash -c "echo '$LAST_OUT' | grep -q 'not a regular file'"
check "resume of a missing directory" 1 "$bin" reconstruct --resume "$tmp/none"
expect "resume of a missing directory: said so" bash -c "echo '$LAST_OUT' | grep -q 'No such file or directory'"
mkdir -p "$tmp/notrun"
check "resume of a directory that is not a run" 1 "$bin" reconstruct --resume "$tmp/notrun"
expect "resume of a directory that is not a run: said so" bash -c "echo '$LAST_OUT' | grep -q 'not a run directory (no config.ini)'"
mkdir -p "$tmp/empty"
printf '[reconstruct]\ndata = %s\n' "$tmp/d.h5" > "$tmp/empty/config.ini"
check "resume of a directory without checkpoint" 1 "$bin" reconstruct --resume "$tmp/empty"

# A dataset under a long path (config.ini lines over 199 bytes, past libinih's limit) resumes.
long="$tmp/$(printf 'l%.0s' $(seq 1 120))/$(printf 'm%.0s' $(seq 1 120))"
mkdir -p "$long" && cp "$tmp/d.h5" "$long/d.h5"
check "a long dataset path" 0 "$bin" reconstruct "$long/d.h5" -o "$tmp/lp" "${small[@]}" --generations 1
check "a long dataset path resumes" 0 "$bin" reconstruct --resume "$tmp/lp" --generations 2
printf '\xef\xbb\xbf; a comment\r\n[ reconstruct ]\r\n  M = 17  \r\n# another\r\n\r\nseed=3\r\n' > "$tmp/crlf.ini"
check "a configuration with a byte-order mark, CRLF lines and comments" 0 "$bin" reconstruct "$tmp/d.h5" -o "$tmp/crlf" \
  --config "$tmp/crlf.ini" --refs 300 --refs-start 0 --soft-k 8 --soft-gens 1 --phase-cycles 2 --threads 2 --generations 1
expect "the configuration's values are used" bash -c "grep -qx 'M = 17' '$tmp/crlf/config.ini' && grep -qx 'seed = 3' '$tmp/crlf/config.ini'"
printf '[reconstruct]\nM = 15\x00\n' > "$tmp/nul.ini"
check "a configuration with a NUL byte" 2 "$bin" reconstruct "$tmp/d.h5" -o "$tmp/o" --config "$tmp/nul.ini"

expect "config.ini writes numbers as typed (soft-tau = 0.3, not 0.29999999999999999)" grep -qx 'soft-tau = 0.3' "$tmp/lp/config.ini"
# Progress that fits where it goes: stderr is a file here, so timestamped lines per step
# and per generation; --quiet: none.
check "progress into a file" 0 "$bin" reconstruct "$tmp/d.h5" -o "$tmp/prog" "${small[@]}" --generations 2
expect "progress: a timestamped line per generation" bash -c "[ \$(echo \"\$0\" | grep -cE '^\[[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8}\] generation [12]/2: slice') -eq 2 ]" "$LAST_OUT"
expect "progress: a line as each step ends" bash -c "echo \"\$0\" | grep -qE '^\[.*\] generation 2/2 merge done in [0-9.]+s'" "$LAST_OUT"
check "--quiet" 0 "$bin" reconstruct "$tmp/d.h5" -o "$tmp/quiet" "${small[@]}" --generations 2 --quiet
expect "--quiet: no progress lines" bash -c "! echo \"\$0\" | grep -q 'generation [0-9]*/'" "$LAST_OUT"
check "--quiet 1 in a resume" 0 "$bin" reconstruct --resume "$tmp/quiet" --generations 3 --quiet 1
expect "--quiet 1 in a resume: no progress lines" bash -c "! echo \"\$0\" | grep -q '^\[.*generation'" "$LAST_OUT"
check "demo help" 0 "$bin" demo --help
check "demo rejects an unknown option" 2 "$bin" demo --frobnicate 1
check "demo rejects too few images" 2 "$bin" demo --images 5

# A full run: every output, nothing temporary left.
check "small reconstruction" 0 "$bin" reconstruct "$tmp/d.h5" -o "$tmp/full" --generations 3 "${small[@]}"
for f in density.mrc results.h5 log.jsonl config.ini checkpoint.h5; do
  expect "writes $f" test -s "$tmp/full/$f"
done
expect "no temporary files left" bash -c "! ls '$tmp/full' | grep -q tmp"
expect "one log line per generation" bash -c "[ \$(wc -l < '$tmp/full/log.jsonl') -eq 3 ]"
expect "log lines are JSON objects with timings" bash -c "grep -c '^{\"generation\":[0-9]*,.*\"t_merge\":[0-9.e-]*.*}\$' '$tmp/full/log.jsonl' | grep -qx 3"
expect "effective configuration saved" grep -qx "refs = 300" "$tmp/full/config.ini"

# Half sets: two independent runs and the gold-standard FSC between them.
check "half sets" 0 "$bin" reconstruct "$tmp/d.h5" -o "$tmp/hs" --half-sets --generations 2 "${small[@]}"
expect "half sets: both runs and the curve" test -s "$tmp/hs/half1/density.mrc" -a -s "$tmp/hs/half2/density.mrc" -a -s "$tmp/hs/fsc_halves.csv"
expect "half sets: the resolution is reported" grep -q "FSC 0.5 at [0-9.]* A" <<< "$LAST_OUT"
expect "half sets: each half's configuration names it" bash -c "grep -qx 'half = 1' '$tmp/hs/half1/config.ini' && grep -qx 'half = 2' '$tmp/hs/half2/config.ini'"
check "half sets cannot be resumed as a whole" 2 "$bin" reconstruct --resume "$tmp/hs/half1" --half-sets
check "half 1 resumes on its own" 0 "$bin" reconstruct --resume "$tmp/hs/half1" --generations 3 --threads 2

# Orientation accuracy as a command, equal to the reconstruction's own report.
check "orientation accuracy" 0 "$bin" orientations "$tmp/full/results.h5" "$tmp/d.h5"
expect "orientation accuracy: median and 90th percentile" grep -q "median [0-9.]* deg, 90th percentile [0-9.]* deg" <<< "$LAST_OUT"
expect "log has the 90th percentile" grep -q '"p90_orientation_error_deg":[0-9]' "$tmp/full/log.jsonl"
check "orientation accuracy: wrong image count" 1 "$bin" orientations "$tmp/full/results.h5" "$tmp/d.h5" --images 50
check "orientation accuracy: missing results" 1 "$bin" orientations "$tmp/none.h5" "$tmp/d.h5"
check "orientation accuracy: one file" 2 "$bin" orientations "$tmp/d.h5"

# The configuration file gives the same run as the flags; flags override it.
printf '[reconstruct]\nM = 15\nrefs = 300\nrefs-start = 0\nsoft-k = 8\nsoft-gens = 1\nphase-cycles = 2\ngenerations = 9\n' > "$tmp/run.ini"
check "run from a configuration file" 0 "$bin" reconstruct "$tmp/d.h5" -o "$tmp/cfg" --config "$tmp/run.ini" --generations 3 --threads 2
expect "configuration file run equals the flags run" cmp -s "$tmp/full/density.mrc" "$tmp/cfg/density.mrc"

# Stopped after 2 generations, resumed to 3: the same density as the uninterrupted run.
check "two generations" 0 "$bin" reconstruct "$tmp/d.h5" -o "$tmp/part" --generations 2 "${small[@]}"
check "resume takes only threads and generations" 2 "$bin" reconstruct --resume "$tmp/part" --refs 5
check "resume to three generations" 0 "$bin" reconstruct --resume "$tmp/part" --generations 3 --threads 2
expect "resumed density equals the uninterrupted one" cmp -s "$tmp/full/density.mrc" "$tmp/part/density.mrc"
# The same bytes: results.h5 keeps the configuration, output directory included, so the
# uninterrupted run is made in the same directory and moved aside.
"$bin" reconstruct "$tmp/d.h5" -o "$tmp/same" --generations 3 "${small[@]}" > /dev/null 2>&1 && mv "$tmp/same" "$tmp/same3"
"$bin" reconstruct "$tmp/d.h5" -o "$tmp/same" --generations 2 "${small[@]}" > /dev/null 2>&1
check "resume in the same directory" 0 "$bin" reconstruct --resume "$tmp/same" --generations 3 --threads 2
expect "resumed results.h5 and checkpoint.h5: the uninterrupted run's bytes" bash -c "cmp -s '$tmp/same3/results.h5' '$tmp/same/results.h5' && cmp -s '$tmp/same3/checkpoint.h5' '$tmp/same/checkpoint.h5'"
expect "resumed log has three lines" bash -c "[ \$(wc -l < '$tmp/part/log.jsonl') -eq 3 ]"
check "resume to fewer generations than the checkpoint holds" 2 "$bin" reconstruct --resume "$tmp/part" --generations 2
expect "fewer generations: said so" bash -c "echo '$LAST_OUT' | grep -q 'holds 3 generations, more than --generations 2'"
sed -i 's/^refs = 300/refs = 301/' "$tmp/part/config.ini"
check "resume refuses a changed configuration" 1 "$bin" reconstruct --resume "$tmp/part" --generations 4

finish
