#!/usr/bin/env bash
# The command-line program: exit codes and one-line errors. Usage: cli_basic.sh SPINIFEL
set -u
bin="$1"
source "$(dirname "$0")/lib_cli.sh"
check "no command is a usage error" 2 "$bin"
check "unknown command is a usage error" 2 "$bin" frobnicate
[ "$(echo "$LAST_OUT" | wc -l)" -eq 1 ] || { echo "FAIL unknown command error is not one line"; fails=$((fails + 1)); }
check "help succeeds" 0 "$bin" help
for c in simulate reconstruct fsc orientations plot demo; do
  check "help $c is $c --help" 0 "$bin" help "$c"
  expect "help $c: the command's usage" bash -c "echo \"\$0\" | head -1 | grep -q '^usage: spinifel $c'" "$LAST_OUT"
done
check "help of an unknown command" 2 "$bin" help frobnicate
check "version succeeds" 0 "$bin" --version
check "info succeeds" 0 "$bin" info
expect "threads wait asleep unless the user says otherwise" bash -c "env -u OMP_WAIT_POLICY '$bin' info | grep -qx 'openmp wait policy: passive'"
expect "the user's wait policy is kept" bash -c "OMP_WAIT_POLICY=active '$bin' info | grep -qx 'openmp wait policy: active'"
check "info rejects extra arguments" 2 "$bin" info extra
check "selfcheck passes" 0 "$bin" selfcheck
echo "$LAST_OUT" | grep -q "all passed" || { echo "FAIL selfcheck summary missing"; fails=$((fails + 1)); }
finish
