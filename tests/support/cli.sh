# tests/support/cli.sh — sourced by the CLI scenarios (not a test itself).
#
# Gives: $VELD (the binary), a scratch directory $T removed on exit, and
# check helpers that count passes and failures and print the closing line
# "N passed, N failed".  A scenario ends with `finish`.
set -u
: "${VELD:?VELD must name the veld binary}"
T=$(mktemp -d "${VELD_TEST_TMP:-/tmp}/cli.XXXXXX" 2>/dev/null || mktemp -d)
trap 'rm -rf "$T"' EXIT
PASSED=0
FAILED=0
export VELD_PASSPHRASE="test passphrase"

ok() { PASSED=$((PASSED + 1)); }
bad() { FAILED=$((FAILED + 1)); echo "FAIL: $*" >&2; }

# expect_exit CODE DESCRIPTION -- COMMAND...: run, compare the exit code.
expect_exit() {
  local want=$1 what=$2
  shift 3
  "$@" >"$T/out" 2>"$T/err"
  local got=$?
  if [ "$got" -eq "$want" ]; then ok; else bad "$what: exit $got, wanted $want; stderr: $(head -c 300 "$T/err")"; fi
}

# expect_match PATTERN FILE DESCRIPTION: grep -E PATTERN in FILE.
expect_match() {
  if grep -qE -- "$1" "$2"; then ok; else bad "$3: /$1/ not in $(head -c 300 "$2")"; fi
}

expect_no_match() {
  if grep -qE -- "$1" "$2"; then bad "$3: /$1/ found"; else ok; fi
}

# One error line on stderr, "veld: what: why".
expect_one_error_line() {
  local n
  n=$(wc -l <"$T/err")
  if [ "$n" -eq 1 ] && grep -qE '^veld: [^:]+: .+' "$T/err"; then ok; else bad "$1: stderr is not one 'veld: what: why' line: $(head -c 300 "$T/err")"; fi
}

finish() {
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
}
