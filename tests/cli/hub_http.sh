#!/usr/bin/env bash
# CLI scenario: the smart-HTTP hub (tools/hub: git http-backend behind
# lighttpd with Basic auth) and its update hook, driven with the git CLI as
# the client.  Who may move which ref is docs/sync.md "Refs"; the hub is
# docs/hub.md.  Last, a second hub with an organisation made by the built
# `veld`: a revoked device's pushes are refused once the office has synced.
# Network: 127.0.0.1 only.
. "$VELD_SRC/tests/support/cli.sh"
. "$VELD_SRC/tests/support/hub.sh"

hub_need_lighttpd

# A private git environment: no system or user config, fixed identities.
export HOME="$T/home" GIT_CONFIG_NOSYSTEM=1
mkdir -p "$HOME"
export GIT_AUTHOR_NAME=veld GIT_AUTHOR_EMAIL=device@veld.invalid
export GIT_COMMITTER_NAME=veld GIT_COMMITTER_EMAIL=device@veld.invalid

# Device ids as docs/sync.md makes them: 32 hex digits.
A=0a1b2c3d4e5f60718293a4b5c6d7e8f9
B=f9e8d7c6b5a4938271605f4e3d2c1b0a
OFFICE=00ff00ff00ff00ff00ff00ff00ff00ff

H="$T/hub"
hub_start "$H" "$OFFICE" "$A" "$B" || { bad "hub_start"; finish; exit 1; }
R="$H/veld.git"
expect_match '^http://127\.0\.0\.1:[0-9]+/veld\.git$' <(echo "$HUB_URL") "hub_start exports the URL"
PORT=${HUB_URL#http://127.0.0.1:}; PORT=${PORT%%/*}

# A hook of the test's own, beside the veld update hook, records the
# environment receive-pack gives hooks (to check REMOTE_USER and that the
# Basic credentials do not reach it).
cat >"$R/hooks/post-receive" <<EOF
#!/bin/sh
env >"$T/hook-env"
EOF
chmod +x "$R/hooks/post-receive"

hubref() { git -C "$R" rev-parse -q --verify "$1" 2>/dev/null; }

# expect_push WANT_EXIT DESCRIPTION -- USER git-push-args...
expect_push() {
  local want=$1 what=$2 user=$4
  shift 4
  expect_exit "$want" "$what" -- hub_git "$user" "$@"
}

# --- clone over HTTP with credentials; the office creates main ------------
expect_exit 0 "office clones the empty hub" -- hub_git "$OFFICE" clone -q "$HUB_URL" "$T/office"
git -C "$T/office" commit -q --allow-empty -m "veld registry"
expect_push 0 "office pushes main (creation)" -- "$OFFICE" -C "$T/office" push -q origin HEAD:refs/heads/main
[ "$(hubref refs/heads/main)" = "$(git -C "$T/office" rev-parse HEAD)" ] && ok || bad "main on the hub"

expect_exit 0 "device A clones" -- hub_git "$A" clone -q "$HUB_URL" "$T/a"
expect_exit 0 "device B clones" -- hub_git "$B" clone -q "$HUB_URL" "$T/b"
[ "$(git -C "$T/a" rev-parse HEAD)" = "$(hubref refs/heads/main)" ] && ok || bad "A got main"

# --- REMOTE_USER reaches the hooks; the password does not ------------------
git -C "$T/a" commit -q --allow-empty -m "veld sync"
expect_push 0 "A pushes its device ref" -- "$A" -C "$T/a" push -q origin "HEAD:refs/veld/devices/$A"
A1=$(git -C "$T/a" rev-parse HEAD)
[ "$(hubref "refs/veld/devices/$A")" = "$A1" ] && ok || bad "A's device ref on the hub"
expect_match "^REMOTE_USER=$A\$" "$T/hook-env" "REMOTE_USER reaches the hooks"
expect_no_match '^HTTP_AUTHORIZATION=' "$T/hook-env" "Basic credentials do not reach the hooks"
expect_no_match "$(cat "$H/.test-credentials/$A")" "$T/hook-env" "the password is not in the hook environment"

# --- device refs: only their device, fast-forward only, never deleted ------
hub_git "$B" -C "$T/b" fetch -q origin "refs/veld/devices/$A:refs/remotes/a" 2>/dev/null
git -C "$T/b" checkout -q refs/remotes/a
git -C "$T/b" commit -q --allow-empty -m "veld sync"
expect_push 1 "B pushes A's device ref (a fast-forward)" -- "$B" -C "$T/b" push origin "HEAD:refs/veld/devices/$A"
expect_match "remote: veld-hub: refs/veld/devices/$A: only device $A may update this ref" "$T/err" "refusal names the rule"
expect_match "\[remote rejected\].*hook declined" "$T/err" "client sees the ref rejected"
[ "$(hubref "refs/veld/devices/$A")" = "$A1" ] && ok || bad "A's ref unchanged after B's push"

expect_push 1 "B pushes a ref below its own device id" -- "$B" -C "$T/b" push origin "HEAD:refs/veld/devices/$B/x"
expect_match "only device $B/x may update this ref" "$T/err" "nested device ref refused"
expect_push 0 "B pushes its own device ref" -- "$B" -C "$T/b" push -q origin "HEAD:refs/veld/devices/$B"

git -C "$T/a" checkout -q --detach HEAD~1
git -C "$T/a" commit -q --allow-empty -m "veld sync (rewritten)"
expect_push 1 "A force-pushes a non-fast-forward on its device ref" -- "$A" -C "$T/a" push --force origin "HEAD:refs/veld/devices/$A"
expect_match "remote: veld-hub: refs/veld/devices/$A: non-fast-forward update refused" "$T/err" "non-fast-forward refusal message"
[ "$(hubref "refs/veld/devices/$A")" = "$A1" ] && ok || bad "A's ref unchanged after the forced push"
git -C "$T/a" checkout -q "$A1"

expect_push 1 "A deletes its device ref" -- "$A" -C "$T/a" push origin ":refs/veld/devices/$A"
expect_match "veld-hub: refs/veld/devices/$A: deleting this ref is not allowed" "$T/err" "deletion refusal message"
[ "$(hubref "refs/veld/devices/$A")" = "$A1" ] && ok || bad "A's ref survives the deletion attempt"

# A large push: the pack (> git's 1 MiB post buffer) goes as a chunked
# request body through lighttpd.
head -c 3000000 /dev/urandom >"$T/a/blob.bin"
git -C "$T/a" add blob.bin && git -C "$T/a" commit -q -m "veld sync"
expect_push 0 "A pushes a 3 MB commit (chunked request body)" -- "$A" -C "$T/a" push -q origin "HEAD:refs/veld/devices/$A"
A2=$(git -C "$T/a" rev-parse HEAD)
[ "$(hubref "refs/veld/devices/$A")" = "$A2" ] && ok || bad "A's ref moved to the large commit"

expect_push 1 "A pushes an unknown veld ref" -- "$A" -C "$T/a" push origin "HEAD:refs/veld/other/$A"
expect_match "veld-hub: refs/veld/other/$A: unknown veld ref" "$T/err" "unknown veld ref message"
expect_push 1 "A pushes a branch" -- "$A" -C "$T/a" push origin "HEAD:refs/heads/feature"
expect_match "veld-hub: refs/heads/feature: not a veld ref" "$T/err" "branch refusal message"
expect_push 1 "A pushes a tag" -- "$A" -C "$T/a" push origin "HEAD:refs/tags/v1"
expect_match "veld-hub: refs/tags/v1: not a veld ref" "$T/err" "tag refusal message"

# --- keys refs: replaced by fresh root commits, only by their device -------
keys_commit() { # DIR LABEL -> a root commit holding one file
  local tree
  tree=$(printf '%s\n' "$2" | git -C "$1" hash-object -w --stdin)
  tree=$(printf '100644 blob %s\t%s\n' "$tree" "$OFFICE" | git -C "$1" mktree)
  git -C "$1" commit-tree -m "veld keys" "$tree"
}
K1=$(keys_commit "$T/a" "sealed key one")
K2=$(keys_commit "$T/a" "sealed key two")
expect_push 0 "A creates its keys ref" -- "$A" -C "$T/a" push -q origin "$K1:refs/veld-keys/$A"
expect_push 0 "A replaces its keys ref with a fresh root commit (force)" -- "$A" -C "$T/a" push -q --force origin "$K2:refs/veld-keys/$A"
[ "$(hubref "refs/veld-keys/$A")" = "$K2" ] && ok || bad "A's keys ref replaced"
K3=$(git -C "$T/a" commit-tree -p "$K2" -m "veld keys" "$K2^{tree}")
expect_push 1 "A pushes a keys commit with a parent" -- "$A" -C "$T/a" push origin "$K3:refs/veld-keys/$A"
expect_match "veld-hub: refs/veld-keys/$A: keys refs keep no history" "$T/err" "keys history refusal message"
KB=$(keys_commit "$T/b" "forged by B")
expect_push 1 "B force-pushes A's keys ref" -- "$B" -C "$T/b" push --force origin "$KB:refs/veld-keys/$A"
expect_match "remote: veld-hub: refs/veld-keys/$A: only device $A may update this ref" "$T/err" "keys ref refusal names the rule"
[ "$(hubref "refs/veld-keys/$A")" = "$K2" ] && ok || bad "A's keys ref unchanged after B's push"
expect_push 0 "B creates its own keys ref" -- "$B" -C "$T/b" push -q origin "$KB:refs/veld-keys/$B"
expect_push 1 "A deletes its keys ref" -- "$A" -C "$T/a" push origin ":refs/veld-keys/$A"
[ "$(hubref "refs/veld-keys/$A")" = "$K2" ] && ok || bad "A's keys ref survives the deletion attempt"

# --- main: only the office, fast-forward only ------------------------------
git -C "$T/a" checkout -q -B m "$(hubref refs/heads/main)"
git -C "$T/a" commit -q --allow-empty -m "veld merge"
expect_push 1 "A pushes main" -- "$A" -C "$T/a" push origin HEAD:refs/heads/main
expect_match "remote: veld-hub: refs/heads/main: only the office \($OFFICE\) may update this ref" "$T/err" "main refusal message"
hub_git "$OFFICE" -C "$T/office" fetch -q origin "refs/veld/devices/$A:refs/remotes/dev-a" 2>/dev/null
git -C "$T/office" merge -q --no-edit -m "veld merge" refs/remotes/dev-a
expect_push 0 "office pushes main (fast-forward merge)" -- "$OFFICE" -C "$T/office" push -q origin HEAD:refs/heads/main
[ "$(hubref refs/heads/main)" = "$(git -C "$T/office" rev-parse HEAD)" ] && ok || bad "main moved"
git -C "$T/office" commit -q --amend --allow-empty -m "veld merge (rewritten)"
expect_push 1 "office force-pushes a rewritten main" -- "$OFFICE" -C "$T/office" push --force origin HEAD:refs/heads/main
expect_match "refs/heads/main: non-fast-forward update refused" "$T/err" "main is append-only"

# --- authentication --------------------------------------------------------
echo "not the password" >"$T/wrong-pw"
expect_exit 128 "office with a wrong password" -- hub_git_pwfile "$OFFICE" "$T/wrong-pw" -C "$T/office" push origin HEAD:refs/heads/main
expect_match "Authentication failed" "$T/err" "wrong password: authentication failure"
expect_exit 128 "unknown user" -- hub_git_pwfile nobody "$T/wrong-pw" ls-remote "$HUB_URL"
expect_match "Authentication failed" "$T/err" "unknown user: authentication failure"
expect_exit 128 "anonymous push" -- hub_git_anon -C "$T/a" push "$HUB_URL" "HEAD:refs/veld/devices/$A"
expect_exit 128 "anonymous fetch" -- hub_git_anon ls-remote "$HUB_URL"
code=$(hub_http POST /veld.git/git-receive-pack)
[ "$code" = 401 ] && ok || bad "anonymous POST git-receive-pack: HTTP $code, wanted 401"
code=$(hub_http GET "/veld.git/info/refs?service=git-receive-pack")
[ "$code" = 401 ] && ok || bad "anonymous receive-pack advertisement: HTTP $code, wanted 401"
code=$(hub_http GET "/veld.git/info/refs?service=git-upload-pack" "$OFFICE" "$T/wrong-pw")
[ "$code" = 401 ] && ok || bad "wrong password: HTTP $code, wanted 401"
code=$(hub_http GET "/veld.git/info/refs?service=git-upload-pack" "$OFFICE")
[ "$code" = 200 ] && ok || bad "right password: HTTP $code, wanted 200"
code=$(hub_http GET /veld.git/config "$OFFICE")
[ "$code" = 404 ] || [ "$code" = 403 ] && ok || bad "repository files are not served: HTTP $code"
code=$(hub_http GET /users "$OFFICE")
[ "$code" = 403 ] || [ "$code" = 404 ] && ok || bad "nothing outside /veld.git is served: HTTP $code"

# --- fetch every ref back; the hub passes fsck -----------------------------
git init -q --bare "$T/fetcher.git"
expect_exit 0 "fetch of all veld refs" -- hub_git "$B" -C "$T/fetcher.git" fetch -q "$HUB_URL" \
  '+refs/heads/main:refs/veld-hub/heads/main' '+refs/veld/*:refs/veld-hub/veld/*' '+refs/veld-keys/*:refs/veld-hub/veld-keys/*'
git -C "$R" for-each-ref --format='%(objectname) %(refname)' | sed 's# refs/# refs/veld-hub/#' | sort >"$T/hub-refs"
git -C "$T/fetcher.git" for-each-ref --format='%(objectname) %(refname)' refs/veld-hub | sort >"$T/fetched-refs"
if cmp -s "$T/hub-refs" "$T/fetched-refs" && [ "$(wc -l <"$T/hub-refs")" -eq 5 ]; then ok
else bad "fetched refs differ from the hub's: $(diff "$T/hub-refs" "$T/fetched-refs" | head -5)"; fi
expect_exit 0 "ls-remote lists every ref" -- hub_git "$B" ls-remote "$HUB_URL"
expect_match "$K2"$'\t'"refs/veld-keys/$A" "$T/out" "ls-remote shows A's keys ref"
expect_exit 0 "git fsck --strict on the hub" -- git -C "$R" fsck --strict --no-progress
expect_exit 0 "git fsck --strict on the fetched copy" -- git -C "$T/fetcher.git" fsck --strict --no-progress

# --- erasure: a replaced keys commit is pruned by `tools/hub gc` -----------
git -C "$R" cat-file -e "$K1" 2>/dev/null && ok || bad "K1 still stored before gc"
expect_exit 0 "tools/hub gc" -- "$HUB_TOOL" gc "$H"
if git -C "$R" cat-file -e "$K1" 2>/dev/null; then bad "replaced keys commit survives gc"; else ok; fi
if git -C "$R" cat-file -e "$(git -C "$T/a" rev-parse "$K1^{tree}")" 2>/dev/null; then bad "replaced keys tree survives gc"; else ok; fi
git -C "$R" cat-file -e "$K2" && ok || bad "current keys commit kept"
expect_exit 0 "git fsck --strict after gc" -- git -C "$R" fsck --strict --no-progress

# --- users: password only from the environment -----------------------------
expect_exit 2 "adduser refuses a password argument" -- "$HUB_TOOL" adduser "$H" someone secret
expect_exit 1 "adduser without VELD_HUB_PASSWORD" -- env -u VELD_HUB_PASSWORD "$HUB_TOOL" adduser "$H" someone
expect_exit 1 "adduser refuses a user name with a slash" -- env VELD_HUB_PASSWORD=x "$HUB_TOOL" adduser "$H" a/b
# Users added while the server runs can log in at once; deleted ones cannot.
echo "late password" >"$T/late-pw"
VELD_HUB_PASSWORD="late password" "$HUB_TOOL" adduser "$H" late
expect_exit 0 "a user added while running logs in" -- hub_git_pwfile late "$T/late-pw" ls-remote "$HUB_URL"
"$HUB_TOOL" deluser "$H" late
expect_exit 128 "a deleted user is refused" -- hub_git_pwfile late "$T/late-pw" ls-remote "$HUB_URL"

# --- a second hub at the same time gets another port ------------------------
expect_exit 0 "second hub init" -- "$HUB_TOOL" init "$T/hub2"
expect_exit 0 "second hub start on a clashing range" -- env VELD_HUB_PORTS="$PORT-$((PORT + 1))" "$HUB_TOOL" start "$T/hub2"
expect_match "^http://127\.0\.0\.1:$((PORT + 1))/veld\.git\$" "$T/out" "the taken port is skipped"
"$HUB_TOOL" init "$T/hub3" >/dev/null
expect_exit 1 "no free port in a range of one taken port" -- env VELD_HUB_PORTS="$PORT-$PORT" "$HUB_TOOL" start "$T/hub3"
expect_match "no free port" "$T/err" "says why"
expect_exit 0 "second hub stop" -- "$HUB_TOOL" stop "$T/hub2"

# --- no password in any log or output ---------------------------------------
leak=0
for u in "$OFFICE" "$A" "$B"; do
  pw=$(cat "$H/.test-credentials/$u")
  if grep -rqF -- "$pw" "$H/logs" "$T/out" "$T/err" "$T/hook-env"; then leak=1; fi
  if grep -qF -- "$pw" "$H/users"; then leak=1; fi
done
[ "$leak" -eq 0 ] && ok || bad "a password appears in a log, an output or the user file"

# --- stop: the port closes and no process is left ---------------------------
PID=$(cat "$H/run/lighttpd.pid")
expect_exit 0 "hub_stop" -- hub_stop "$H"
if hub_port_open "$PORT"; then bad "port $PORT still open after stop"; else ok; fi
state=$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\).*/\1/p' "/proc/$PID/stat" 2>/dev/null)
if [ -z "$state" ] || [ "$state" = Z ]; then ok; else bad "lighttpd $PID still running (state $state)"; fi
# Any process still running lighttpd with this config or working in the
# hub directory (a git http-backend / receive-pack / hook)?
left=""
for d in /proc/[0-9]*; do
  p=${d#/proc/}
  [ "$p" != "$$" ] && [ "$p" != "$BASHPID" ] || continue
  s=$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\).*/\1/p' "$d/stat" 2>/dev/null)
  [ -n "$s" ] && [ "$s" != Z ] || continue
  c=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null) || continue
  w=$(readlink "$d/cwd" 2>/dev/null) || w=""
  case "$c|$w/" in
    *lighttpd*"$H/run/lighttpd.conf"*|*"|$H/"*) left="$left $p:$c" ;;
  esac
done
[ -z "$left" ] && ok || bad "processes left: $left"
expect_exit 3 "status after stop" -- "$HUB_TOOL" status "$H"
expect_exit 0 "stop again is harmless" -- "$HUB_TOOL" stop "$H"

# --- revocation: the office's sync is enough to stop a device's pushes ------
# A hub of its own with an organisation made by the built `veld`: an office
# and two tablets A and B.  The office revokes A and syncs; main then holds
# registry/revoked/A and the hook refuses every ref user A pushes, with no
# step on the hub.  A's own `veld sync` merges its revocation first, drops
# its case data and pushes nothing (exit 4, docs/sync.md), so the hook is
# exercised as an old or altered client would meet it: plain git over HTTP
# with A's login.  B and the office go on syncing; `tools/hub deluser` is
# then only what takes A's read access away.
VO="$T/veld-office" VA="$T/veld-a" VB="$T/veld-b"

# V DIR ARGS...: veld on the store in DIR, logged in to the hub as its device.
declare -A HUB_USER=([$VO]="" [$VA]="" [$VB]="")
V() {
  local d=$1 u pw=""
  shift
  u=${HUB_USER[$d]}
  [ -n "$u" ] && pw=$(cat "$HUB_DIR/.test-credentials/$u")
  VELD_HUB_USER=$u VELD_HUB_PASSWORD=$pw "$VELD" -C "$d" "$@"
}

device_id() { grep -oE '"id":"[0-9a-f]{32}"' "$1" | cut -d'"' -f4; }

hub_start "$T/hub-revoke" office || { bad "hub_start (revocation)"; finish; exit 1; }
RV="$HUB_DIR/veld.git"
rvref() { git -C "$RV" rev-parse -q --verify "$1" 2>/dev/null; }

# --- an office and two tablets, enrolled and synced ------------------------
expect_exit 0 "org init" -- V "$VO" org init --name "Testorganisatie" --hub "$HUB_URL"
OID=$(hub_add_office "$VO") && ok || bad "no device id or hub login for the office"
HUB_USER[$VO]=$OID
for d in "$VA" "$VB"; do
  expect_exit 0 "device init ${d##*/}" -- V "$d" device init --name "tablet-${d##*/}" --role assistant --out "$d.json"
  id=$(device_id "$d.json")
  hub_add_user "$id" || bad "hub adduser $id"
  HUB_USER[$d]=$id
  expect_exit 0 "enroll ${d##*/}" -- V "$VO" enroll "$d.json" --region 3000-3499
done
AID=${HUB_USER[$VA]} BID=${HUB_USER[$VB]}
expect_exit 0 "office publishes the enrolments" -- V "$VO" sync
for d in "$VA" "$VB"; do
  expect_exit 0 "join ${d##*/}" -- V "$d" join --hub "$HUB_URL"
  expect_exit 0 "first sync ${d##*/}" -- V "$d" sync
done
expect_exit 0 "A opens a case" -- V "$VA" case new --name "Client Een" --postcode 3000
X=$(cat "$T/out")
expect_exit 0 "A syncs its case" -- V "$VA" sync
expect_exit 0 "office merges" -- V "$VO" sync
expect_exit 0 "B syncs" -- V "$VB" sync
[ -n "$(rvref "refs/veld/devices/$AID")" ] && ok || bad "A's device ref is on the hub"
[ -n "$(rvref "refs/veld-keys/$AID")" ] && ok || bad "A's keys ref is on the hub"

# A scratch repository for plain git logged in as A.
GA="$T/git-revoked"
git init -q "$GA"
expect_exit 0 "A fetches its refs with git" -- hub_git "$AID" -C "$GA" fetch -q "$HUB_URL" \
  "refs/veld/devices/$AID:refs/remotes/dev" "refs/veld-keys/$AID:refs/remotes/keys"

# --- the office revokes A; its sync publishes the revocation ---------------
MAIN0=$(rvref refs/heads/main)
expect_exit 0 "office revokes A" -- V "$VO" device revoke "$AID"
if git -C "$RV" cat-file -e "refs/heads/main:registry/revoked/$AID" 2>/dev/null; then
  bad "the revocation is on the hub before the office synced"
else ok; fi
expect_exit 0 "office publishes the revocation" -- V "$VO" sync
[ "$(rvref refs/heads/main)" != "$MAIN0" ] && ok || bad "main did not move with the revocation"
expect_exit 0 "main holds registry/revoked/A" -- git -C "$RV" cat-file -e "refs/heads/main:registry/revoked/$AID"

# --- A writes and syncs: its own veld stops before pushing -----------------
DEV_A=$(rvref "refs/veld/devices/$AID")
KEYS_A=$(rvref "refs/veld-keys/$AID")
expect_exit 0 "revoked A writes a record (it does not know yet)" -- \
  V "$VA" record put "$X" contactregistratie datum=2017-03-02 plaats=huisbezoek 'problematiek:=["financieel"]'
expect_exit 4 "revoked A's veld sync exits 4" -- V "$VA" sync
expect_match "device $AID was revoked by the office" "$T/err" "A's sync says it is revoked"
[ "$(rvref "refs/veld/devices/$AID")" = "$DEV_A" ] && ok || bad "A's device ref moved on its veld sync"

# --- plain git as A: the hook refuses every ref ----------------------------
expect_exit 0 "A can still read the hub (no user was deleted)" -- hub_git "$AID" ls-remote "$HUB_URL"
CA=$(git -C "$GA" commit-tree -p refs/remotes/dev -m "veld sync" "refs/remotes/dev^{tree}")
expect_exit 1 "revoked A pushes a fast-forward of its device ref with git" -- \
  hub_git "$AID" -C "$GA" push "$HUB_URL" "$CA:refs/veld/devices/$AID"
expect_match "remote: veld-hub: refs/veld/devices/$AID: device $AID is revoked by the office" "$T/err" \
  "the refusal names the revoked device"
expect_match "\[remote rejected\].*hook declined" "$T/err" "the client sees the ref rejected"
[ "$(rvref "refs/veld/devices/$AID")" = "$DEV_A" ] && ok || bad "A's device ref moved after the revocation"
KA=$(git -C "$GA" commit-tree -m "veld keys" "refs/remotes/keys^{tree}")
expect_exit 1 "revoked A replaces its keys ref with git" -- \
  hub_git "$AID" -C "$GA" push --force "$HUB_URL" "$KA:refs/veld-keys/$AID"
expect_match "veld-hub: refs/veld-keys/$AID: device $AID is revoked by the office" "$T/err" \
  "keys ref: the refusal names the revoked device"
[ "$(rvref "refs/veld-keys/$AID")" = "$KEYS_A" ] && ok || bad "A's keys ref moved after the revocation"
# The revocation comes before every other rule: a ref A never had is refused for it too.
expect_exit 1 "revoked A pushes another device's ref" -- \
  hub_git "$AID" -C "$GA" push --force "$HUB_URL" "$CA:refs/veld/devices/$BID"
expect_match "device $AID is revoked by the office" "$T/err" "any ref: refused as revoked"

# --- the others go on -------------------------------------------------------
DEV_B=$(rvref "refs/veld/devices/$BID")
[ "$DEV_B" != "$CA" ] && ok || bad "A's push moved B's device ref"
expect_exit 0 "B opens a case after the revocation" -- V "$VB" case new --name "Client Twee" --postcode 3010
expect_exit 0 "B syncs after the revocation" -- V "$VB" sync
[ "$(rvref "refs/veld/devices/$BID")" != "$DEV_B" ] && ok || bad "B's device ref did not move"
MAIN1=$(rvref refs/heads/main)
expect_exit 0 "office merges B's case" -- V "$VO" sync
[ "$(rvref refs/heads/main)" != "$MAIN1" ] && ok || bad "main did not move with B's case"
expect_exit 0 "B syncs again" -- V "$VB" sync
V "$VO" case list >"$T/veld-office-cases" 2>/dev/null
expect_match "Client Twee" "$T/veld-office-cases" "the office holds B's new case"

# The same plain git push as A's, by B of its own ref: taken (the control
# for the refusals above; last, since veld would not take this unsigned
# commit from B's ref).
git -C "$GA" fetch -q "$RV" "refs/veld/devices/$BID:refs/remotes/dev-b"
CB=$(git -C "$GA" commit-tree -p refs/remotes/dev-b -m "veld sync" "refs/remotes/dev-b^{tree}")
expect_exit 0 "B pushes a fast-forward of its device ref with git" -- \
  hub_git "$BID" -C "$GA" push "$HUB_URL" "$CB:refs/veld/devices/$BID"
[ "$(rvref "refs/veld/devices/$BID")" = "$CB" ] && ok || bad "B's device ref moved to $CB"

# --- deluser now only takes A's read access away ----------------------------
expect_exit 0 "tools/hub deluser A" -- "$HUB_TOOL" deluser "$HUB_DIR" "$AID"
expect_exit 128 "A can no longer read the hub" -- hub_git "$AID" ls-remote "$HUB_URL"
expect_exit 0 "git fsck --strict on the hub" -- git -C "$RV" fsck --strict --no-progress

finish
