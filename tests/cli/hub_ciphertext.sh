#!/usr/bin/env bash
# CLI scenario: invariant 4 ("Encrypted at rest, everywhere") and the hub
# half of invariant 6 ("The hub sees ciphertext only").
#
# An office and two tablets work on cases through a hub with the built
# `veld`, twice: through a hub on a path and through the smart-HTTP hub
# (tools/hub: git http-backend behind lighttpd, Basic auth, the veld update
# hook; each store logs in with its device id).  Case headers, contacts, a Sociale Balans with a free-text
# synthesis, edits on both tablets, a conflict and its resolution, a
# delete, several syncs.  Every name, address, phone number and text is a
# marker nobody else would write.  Then, with the git CLI only:
#   - a `git clone --mirror` of the hub (over HTTP: through the server,
#     logged in as the office) and the hub's repository itself: every
#     object decompressed (cat-file --batch-all-objects), every ref name,
#     commit message, author/committer line and tree path: no marker
#     anywhere; nor in any file the hub keeps (over HTTP: its logs and
#     request buffers too);
#   - `git fsck --strict` passes on the hub and on the clone;
# and every byte of every file of each store directory (veld.db, its WAL
# and shm, the key file), plus every object of each store's repository
# decompressed: no marker.  A positive control (`veld export` shows the
# markers) keeps the greps from passing on an empty data set.
. "$VELD_SRC/tests/support/cli.sh"
. "$VELD_SRC/tests/support/hub.sh"

export HOME="$T/home" GIT_CONFIG_NOSYSTEM=1 LC_ALL=C
mkdir -p "$HOME"
PATH=$PATH:/usr/sbin

# Hub credentials per store directory (HTTP only): user = device id.
declare -A HUB_USER
V() {
  local d=$1 u pw=""
  shift
  u=${HUB_USER[$d]:-}
  [ -n "$u" ] && [ -n "${HUB_DIR:-}" ] && pw=$(cat "$HUB_DIR/.test-credentials/$u")
  VELD_HUB_USER=$u VELD_HUB_PASSWORD=$pw "$VELD" -C "$d" "$@"
}

# hub_clone_as_office DEST: git clone --mirror of the HTTP hub as the office.
hub_clone_as_office() {
  hub_git "$(git -C "$HUB_DIR/veld.git" config veld.office)" clone -q --mirror "$HUB_URL" "$1"
}

# Markers: personal data of the kind a case holds.
NAME_X="Marieke Vandersteenhoven-Quist"
NAME_Y="Jozef Wuytswinkelmans"
ADDRESS="Kapucijnenvoer 4711 bus 3"
PHONE="0470998877"
BIRTH="1961-11-23"
REF="DOSSIER-QZX-5150"
NOTE="Synthese: schuldenlast bij de Zwartewaterbank, huisbaas dreigt met uithuiszetting"
REFERRAL="Wijkgezondheidscentrum Zonnebloemhof"
EDIT_A="Tweede gesprek bij de Tandartsenpraktijk Klaproosveld"
EDIT_B="Doorverwezen naar het Oxalis-Huurdersplatform"
MARKERS=("$NAME_X" "$NAME_Y" "$ADDRESS" "$PHONE" "$BIRTH" "$REF" "$NOTE" "$REFERRAL" "$EDIT_A" "$EDIT_B"
  "Vandersteenhoven" "Wuytswinkelmans" "Kapucijnenvoer" "Zwartewaterbank" "Zonnebloemhof" "Klaproosveld" "Oxalis")

sync_all() {
  local d
  for d in "$A" "$B" "$O" "$A" "$B"; do
    V "$d" sync >/dev/null 2>"$T/sync-err" || bad "sync of $d: $(cat "$T/sync-err")"
  done
}

# no_marker WHAT FILE: none of the markers occurs in FILE (bytes).
no_marker() {
  local what=$1 file=$2 m hit=""
  for m in "${MARKERS[@]}"; do
    if grep -aqF -- "$m" "$file"; then hit="$hit '$m'"; fi
  done
  if [ -z "$hit" ]; then ok; else bad "$what: found$hit"; fi
}

# Everything git shows of a repository, decompressed, into one file.
dump_repo() {
  local repo=$1 out=$2 c
  {
    git -C "$repo" cat-file --batch-all-objects --batch
    git -C "$repo" for-each-ref --format='%(refname) %(objectname)'
    git -C "$repo" log --all --format='%H%n%an <%ae>%n%cn <%ce>%n%B' 2>/dev/null
    for c in $(git -C "$repo" rev-list --all 2>/dev/null); do
      git -C "$repo" ls-tree -r -t --full-tree "$c"
    done
    # Loose and packed files as they are on disk, reflogs, config, hooks.
    find "$repo" -type f -print0 | xargs -0 cat
  } >"$out" 2>"$T/dump-err"
  [ -s "$out" ] && ok || bad "dump of $repo is empty: $(head -c 300 "$T/dump-err")"
}

# scenario KIND HUB HUB_REPO HUB_FILES CLONE...: everything against one hub
# (HUB: what the stores are given; HUB_REPO: its repository on disk;
# HUB_FILES: every file the hub keeps; CLONE: the git command that clones
# it, the source and destination appended).
scenario() {
  local kind=$1 hub=$2 HR=$3 HF=$4 R="$T/$1" d id m n p
  shift 4
  local O="$R/office" A="$R/a" B="$R/b" X Y C1 C2 N_OBJ
  mkdir -p "$R"

  # --- an organisation and its work ----------------------------------------
  HUB_USER[$O]="" HUB_USER[$A]="" HUB_USER[$B]=""
  # Over HTTP the office's login is its device id (docs/hub.md), which
  # exists only once org init has made the store: org init must not need
  # the login yet; the hub learns it now and the first sync publishes.
  expect_exit 0 "$kind: org init" -- V "$O" org init --name "Testorganisatie" --hub "$hub"
  if [ "$kind" = http ]; then
    id=$(hub_add_office "$O") && ok || bad "$kind: no device id or hub login for the office"
    HUB_USER[$O]=$id
  fi
  for d in "$A" "$B"; do
    expect_exit 0 "$kind: device init ${d##*/}" -- V "$d" device init --name "tablet-${d##*/}" --role assistant --out "$d.json"
    if [ "$kind" = http ]; then
      id=$(grep -oE '"id":"[0-9a-f]{32}"' "$d.json" | cut -d'"' -f4)
      hub_add_user "$id" || bad "$kind: hub adduser $id"
      HUB_USER[$d]=$id
    fi
    expect_exit 0 "$kind: enroll ${d##*/}" -- V "$O" enroll "$d.json" --region 3000-3499
  done
  expect_exit 0 "$kind: office publishes the enrolments" -- V "$O" sync
  for d in "$A" "$B"; do
    expect_exit 0 "$kind: join" -- V "$d" join --hub "$hub"
    expect_exit 0 "$kind: first sync" -- V "$d" sync
  done

  expect_exit 0 "$kind: case X" -- V "$A" case new --name "$NAME_X" --postcode 3000 --address "$ADDRESS" --phone "$PHONE" --birth "$BIRTH" --ref "$REF"
  X=$(cat "$T/out")
  expect_exit 0 "$kind: case Y" -- V "$B" case new --name "$NAME_Y" --postcode 3010
  Y=$(cat "$T/out")
  expect_exit 0 "$kind: contact on X" -- V "$A" record put "$X" contactregistratie datum=2017-03-02 plaats=huisbezoek \
    'problematiek:=["financieel"]' 'wijze_van_hulpverlening:=["doorverwijzing"]' "doorverwezen_naar=$REFERRAL"
  C1=$(cat "$T/out")
  # A Sociale Balans: a score for each of the sixteen domains, the synthesis as a marker.
  {
    printf '{'
    for dom in familiale_situatie huisvesting gezondheid_lichamelijk gezondheid_psychisch inkomen budget_schulden \
      administratie mobiliteit opleiding_vorming werk vrije_tijd zelfvertrouwen communicatie ict_vaardigheden \
      sociaal_netwerk organisatie_planning; do
      printf '"%s":{"score":3},' "$dom"
    done
    printf '"afnamedatum":"2019-01-01"}\n'
  } >"$R/balans.json"
  expect_exit 0 "$kind: sociale balans on X" -- V "$A" record put "$X" sociale_balans --file "$R/balans.json" "synthese=$NOTE"
  expect_exit 0 "$kind: contact on Y" -- V "$B" record put "$Y" contactregistratie datum=2017-03-03 plaats=zitdag 'problematiek:=["materieel"]'
  C2=$(cat "$T/out")

  sync_all
  # Both tablets edit one field of the same record offline: a conflict, then resolved.
  expect_exit 0 "$kind: edit on A" -- V "$A" record put "$X" contactregistratie --record "$C1" "doorverwezen_naar=$EDIT_A"
  expect_exit 0 "$kind: edit on B" -- V "$B" record put "$X" contactregistratie --record "$C1" "doorverwezen_naar=$EDIT_B"
  sync_all
  expect_exit 0 "$kind: resolve" -- V "$B" resolve "$C1" doorverwezen_naar "$EDIT_B"
  expect_exit 0 "$kind: delete a record" -- V "$B" record delete "$C2"
  sync_all
  sync_all

  # Positive control: the data is there, readable where it should be.
  V "$O" export >"$R/export-office" 2>/dev/null
  for m in "$NAME_X" "$NAME_Y" "$ADDRESS" "$NOTE" "$EDIT_B"; do
    grep -qF -- "$m" "$R/export-office" && ok || bad "$kind: control: '$m' is not in the office's export"
  done
  V "$B" export >"$R/export-b" 2>/dev/null
  grep -qF -- "$NOTE" "$R/export-b" && ok || bad "$kind: control: B cannot read the synthesis written on A"

  # --- the hub ---------------------------------------------------------------
  N_OBJ=$(git -C "$HR" cat-file --batch-all-objects --batch-check | wc -l)
  [ "$N_OBJ" -gt 20 ] && ok || bad "$kind: the hub holds only $N_OBJ objects"
  dump_repo "$HR" "$R/hub-dump"
  no_marker "$kind: hub objects, refs, messages and paths" "$R/hub-dump"
  find "$HF" -type f -print0 | xargs -0 cat >"$R/hub-files"
  [ -s "$R/hub-files" ] && ok || bad "$kind: no files under $HF"
  no_marker "$kind: every file the hub keeps" "$R/hub-files"
  expect_exit 0 "$kind: git fsck --strict on the hub" -- git -C "$HR" fsck --strict --no-progress
  expect_exit 0 "$kind: git clone --mirror of the hub" -- "$@" "$R/clone.git"
  [ "$(git -C "$R/clone.git" for-each-ref | wc -l)" -eq "$(git -C "$HR" for-each-ref | wc -l)" ] && ok \
    || bad "$kind: the mirror does not hold every ref of the hub"
  dump_repo "$R/clone.git" "$R/clone-dump"
  no_marker "$kind: mirror clone objects, refs, messages and paths" "$R/clone-dump"
  expect_exit 0 "$kind: git fsck --strict on the clone" -- git -C "$R/clone.git" fsck --strict --no-progress
  # Every pack unpacked into a fresh repository too (objects one by one).
  git init -q --bare "$R/unpacked.git"
  for p in "$R"/clone.git/objects/pack/*.pack; do
    [ -e "$p" ] || continue
    git -C "$R/unpacked.git" unpack-objects -q <"$p" || bad "$kind: unpack-objects $p"
  done
  git -C "$R/unpacked.git" cat-file --batch-all-objects --batch >"$R/unpacked-dump" 2>/dev/null
  [ -s "$R/unpacked-dump" ] && ok || bad "$kind: nothing unpacked from the clone's packs"
  no_marker "$kind: objects unpacked from the clone's packs" "$R/unpacked-dump"
  # Paths are ids only: cases/<2 hex>/<hex>/<32 hex>/<32 hex>, registry/..., keys <32 hex>/<32 hex>.
  git -C "$HR" for-each-ref --format='%(refname)' | while read -r ref; do git -C "$HR" ls-tree -r --name-only "$ref"; done \
    | sort -u >"$R/paths"
  if grep -vE '^(cases/[0-9a-f]{2}/[0-9a-f]/[0-9a-f]{32}/[0-9a-f]{32}|registry/org|registry/(devices|revoked)/[0-9a-f]{32}|erased/[0-9a-f]{32}|forms/[a-z_]+/[0-9]+\.lua|[0-9a-f]{32}/[0-9a-f]{32})$' "$R/paths" >"$R/odd-paths"; then
    bad "$kind: tree paths that are not ids: $(head -c 300 "$R/odd-paths")"
  else ok; fi
  git -C "$HR" for-each-ref --format='%(refname)' | grep -vE '^refs/(heads/main|veld/devices/[0-9a-f]{32}|veld-keys/[0-9a-f]{32})$' >"$R/odd-refs" \
    && bad "$kind: unexpected refs on the hub: $(head -c 300 "$R/odd-refs")" || ok
  git -C "$HR" log --all --format='%s' | sort -u | grep -vE '^veld (sync|merge|keys|registry)$' >"$R/odd-msgs" \
    && bad "$kind: commit messages that are not the fixed ones: $(head -c 300 "$R/odd-msgs")" || ok

  # --- the stores ------------------------------------------------------------
  for d in "$O" "$A" "$B"; do
    n=$(find "$d" -type f | wc -l)
    [ "$n" -gt 3 ] && ok || bad "$kind: $d holds only $n files"
    find "$d" -type f -print0 | xargs -0 cat >"$R/store-bytes"
    no_marker "$kind: files of $(basename "$d") (veld.db, WAL, key file, repository files)" "$R/store-bytes"
    dump_repo "$d/repo" "$R/store-repo-dump"
    no_marker "$kind: repository of $(basename "$d"), decompressed" "$R/store-repo-dump"
  done
  # The WAL of a store that is open and writing: A writes, the CLI exits; the
  # WAL file (if SQLite kept it) was in the sweep above; check it explicitly.
  for d in "$O" "$A" "$B"; do
    for f in "$d"/*-wal "$d"/*-journal; do
      [ -e "$f" ] || continue
      no_marker "$kind: $(basename "$f") of $(basename "$d")" "$f"
    done
  done
}


scenario path "$T/hub.git" "$T/hub.git" "$T/hub.git" git clone -q --mirror "$T/hub.git"

# The same through the smart-HTTP hub; the mirror is cloned through the
# server, logged in as the office.
if command -v lighttpd >/dev/null; then
  HUB_DIR=""
  if hub_start "$T/http-hub" office; then
    scenario http "$HUB_URL" "$HUB_DIR/veld.git" "$HUB_DIR" hub_clone_as_office
  else
    bad "http: the hub did not start"
  fi
else
  echo "SKIP: lighttpd is not installed (tools/setup installs it): the smart-HTTP hub variant does not run" >&2
fi

finish
