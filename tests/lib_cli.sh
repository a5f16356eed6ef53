# Shared by the tests/cli_*.sh scripts (sourced): checks that count and report.
fails=0
passed=0
LAST_OUT=""
check() { # check NAME EXPECTED_RC COMMAND...: the exit code; the output kept in LAST_OUT
  local name="$1" want="$2"; shift 2
  local out rc
  out="$("$@" 2>&1)"; rc=$?
  if [ "$rc" -ne "$want" ]; then
    echo "FAIL $name: exit $rc, expected $want: $out"; fails=$((fails + 1))
  else
    echo "ok   $name"; passed=$((passed + 1))
  fi
  LAST_OUT="$out"
}
expect() { # expect NAME CONDITION...
  local name="$1"; shift
  if "$@"; then echo "ok   $name"; passed=$((passed + 1)); else echo "FAIL $name: $LAST_OUT"; fails=$((fails + 1)); fi
}
one_line() { [ "$(echo "$LAST_OUT" | wc -l)" -eq 1 ]; }
finish() { echo "$passed passed, $fails failed"; [ "$fails" -eq 0 ]; }
