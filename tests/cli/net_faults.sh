#!/usr/bin/env bash
# CLI scenario: syncs over a bad network.  An office and a tablet on the
# smart-HTTP hub (tools/hub); the tablet reaches the hub through a
# fault-injecting proxy (tests/support/faultproxy.py), the office directly.
# For each fault of the matrix the tablet writes a record and syncs through
# the fault: the sync ends within a bound, with exit 0 or 1; the fault was
# met; the next sync without it succeeds.  Then the office and the tablet
# sync until both exports are the same bytes: nothing lost or doubled.
#
# Fetches go through libgit2 (git-upload-pack), pushes through libcurl
# (git-receive-pack, sync/git/http.c).  A stall is tried on the push only:
# libcurl gives up on a hub silent for 30 s, while libgit2 1.5 has no
# timeout of its own (GIT_OPT_SET_SERVER_TIMEOUT came in 1.7), so a fetch
# that stalls waits for the operating system's TCP timeouts.
# Network: 127.0.0.1 only.
. "$VELD_SRC/tests/support/cli.sh"
. "$VELD_SRC/tests/support/hub.sh"

hub_need_lighttpd
BOUND=60   # seconds a sync may take through any fault (the stall: 30 s + slack)

VO="$T/office" VA="$T/tablet" P="$T/proxy"
mkdir -p "$P"
: >"$P/hits"
declare -A LOGIN=([$VO]="" [$VA]="")

# V DIR ARGS...: veld on the store in DIR, logged in to the hub as its device.
V() {
  local d=$1 pw=""
  shift
  [ -n "${LOGIN[$d]}" ] && pw=$(cat "$HUB_DIR/.test-credentials/${LOGIN[$d]}")
  VELD_HUB_USER=${LOGIN[$d]} VELD_HUB_PASSWORD=$pw timeout "$BOUND" "$VELD" -C "$d" "$@"
}

# The proxy is stopped when the test exits (hub_start chains this trap).
PROXY=""
trap '[ -z "$PROXY" ] || kill "$PROXY" 2>/dev/null; rm -rf "$T"' EXIT
hub_start "$T/hub" office || { bad "hub_start"; finish; exit 1; }
PORT=${HUB_URL#http://127.0.0.1:}; PORT=${PORT%%/*}
python3 "$VELD_SRC/tests/support/faultproxy.py" "$PORT" "$P" &
PROXY=$!
for _ in $(seq 50); do [ -s "$P/port" ] && break; sleep 0.1; done
[ -s "$P/port" ] && ok || { bad "the proxy did not start"; finish; exit 1; }
VIA="http://127.0.0.1:$(cat "$P/port")/veld.git"

# --- an office and a tablet, the tablet joined through the proxy -----------
expect_exit 0 "org init" -- V "$VO" org init --name "Testorganisatie" --hub "$HUB_URL"
LOGIN[$VO]=$(hub_add_office "$VO") && ok || bad "no hub login for the office"
expect_exit 0 "device init" -- V "$VA" device init --name tablet --role assistant --out "$T/req.json"
LOGIN[$VA]=$(grep -oE '"id":"[0-9a-f]{32}"' "$T/req.json" | cut -d'"' -f4)
hub_add_user "${LOGIN[$VA]}" || bad "hub adduser"
expect_exit 0 "enroll" -- V "$VO" enroll "$T/req.json" --region 3000-3499
expect_exit 0 "office publishes the enrolment" -- V "$VO" sync
expect_exit 0 "join through the proxy" -- V "$VA" join --hub "$VIA"
expect_exit 0 "first sync through the proxy" -- V "$VA" sync
expect_exit 0 "a case" -- V "$VA" case new --name "Client Een" --postcode 3000
CASE=$(cat "$T/out")
expect_exit 0 "the case syncs" -- V "$VA" sync

# --- the matrix ---------------------------------------------------------------
# fault_round FAULT MATCH [ARG]: the office merges (so the tablet has
# something to fetch), the tablet writes a record and syncs through the
# fault, then without it.
N=0
fault_round() {
  local what="$*" t0 t1 rc hits
  N=$((N + 1))
  expect_exit 0 "office sync before '$what'" -- V "$VO" sync
  expect_exit 0 "record before '$what'" -- V "$VA" record put "$CASE" contactregistratie \
    "datum=2017-03-$(printf %02d "$N")" plaats=huisbezoek 'problematiek:=["financieel"]'
  hits=$(wc -l <"$P/hits" 2>/dev/null || echo 0)
  echo "$*" >"$P/fault"
  t0=$(date +%s)
  V "$VA" sync >"$T/out" 2>"$T/err"
  rc=$?
  t1=$(date +%s)
  echo pass >"$P/fault"
  if [ "$rc" -eq 0 ] || [ "$rc" -eq 1 ]; then ok; else bad "sync through '$what': exit $rc: $(head -c 300 "$T/err")"; fi
  if [ "$rc" -eq 1 ]; then expect_one_error_line "sync through '$what'"; fi
  [ $((t1 - t0)) -lt "$BOUND" ] && ok || bad "sync through '$what' took $((t1 - t0)) s"
  [ "$(wc -l <"$P/hits" 2>/dev/null || echo 0)" -gt "$hits" ] && ok || bad "'$what' was never met"
  expect_exit 0 "the next sync after '$what'" -- V "$VA" sync
}

fault_round 500 "service=git-upload-pack"
fault_round 500 "/veld.git/git-receive-pack"
fault_round reset "/veld.git/git-upload-pack"
fault_round reset "/veld.git/git-receive-pack"
fault_round truncate "/veld.git/git-upload-pack" 300
fault_round truncate "service=git-receive-pack" 100
fault_round truncate "/veld.git/git-receive-pack" 20
fault_round slow "/veld.git/" 512
fault_round stall "/veld.git/git-receive-pack"

# --- nothing lost or doubled ---------------------------------------------------
expect_exit 0 "office merges" -- V "$VO" sync
expect_exit 0 "tablet syncs" -- V "$VA" sync
expect_exit 0 "office export" -- V "$VO" export
cp "$T/out" "$T/office.json"
expect_exit 0 "tablet export" -- V "$VA" export
cmp -s "$T/out" "$T/office.json" && ok || bad "office and tablet exports differ"
n=$(grep -o '"contactregistratie"' "$T/out" | wc -l)
[ "$n" -eq "$N" ] && ok || bad "$n contact records in the export, wanted $N"

finish
