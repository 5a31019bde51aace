#!/usr/bin/env bash
# CLI scenario: invariant 4 ("Encrypted at rest, everywhere") and the hub
# half of invariant 6 ("The hub sees ciphertext only").
#
# An office and two tablets work on cases through a path hub with the
# built `veld`: case headers, contacts, a Sociale Balans with a free-text
# synthesis, edits on both tablets, a conflict and its resolution, a
# delete, several syncs.  Every name, address, phone number and text is a
# marker nobody else would write.  Then, with the git CLI only:
#   - a `git clone --mirror` of the hub and the hub itself: every object
#     decompressed (cat-file --batch-all-objects), every ref name, commit
#     message, author/committer line and tree path: no marker anywhere;
#   - `git fsck --strict` passes on the hub and on the clone;
# and every byte of every file of each store directory (veld.db, its WAL
# and shm, the key file), plus every object of each store's repository
# decompressed: no marker.  A positive control (`veld export` shows the
# markers) keeps the greps from passing on an empty data set.
. "$VELD_SRC/tests/support/cli.sh"

export HOME="$T/home" GIT_CONFIG_NOSYSTEM=1 LC_ALL=C
mkdir -p "$HOME"

H="$T/hub.git"
O="$T/office"
A="$T/a"
B="$T/b"
V() { local d=$1; shift; "$VELD" -C "$d" "$@"; }

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

# --- an organisation and its work ------------------------------------------
expect_exit 0 "org init" -- V "$O" org init --name "Testorganisatie" --hub "$H"
for d in a b; do
  expect_exit 0 "device init $d" -- V "$T/$d" device init --name "tablet-$d" --role assistant --out "$T/$d.json"
  expect_exit 0 "enroll $d" -- V "$O" enroll "$T/$d.json" --region 3000-3499
done
expect_exit 0 "office publishes the enrolments" -- V "$O" sync
for d in "$A" "$B"; do
  expect_exit 0 "join" -- V "$d" join --hub "$H"
  expect_exit 0 "first sync" -- V "$d" sync
done

expect_exit 0 "case X" -- V "$A" case new --name "$NAME_X" --postcode 3000 --address "$ADDRESS" --phone "$PHONE" --birth "$BIRTH" --ref "$REF"
X=$(cat "$T/out")
expect_exit 0 "case Y" -- V "$B" case new --name "$NAME_Y" --postcode 3010
Y=$(cat "$T/out")
expect_exit 0 "contact on X" -- V "$A" record put "$X" contactregistratie datum=2017-03-02 plaats=huisbezoek \
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
} >"$T/balans.json"
expect_exit 0 "sociale balans on X" -- V "$A" record put "$X" sociale_balans --file "$T/balans.json" "synthese=$NOTE"
expect_exit 0 "contact on Y" -- V "$B" record put "$Y" contactregistratie datum=2017-03-03 plaats=zitdag 'problematiek:=["materieel"]'
C2=$(cat "$T/out")

sync_all() {
  local d
  for d in "$A" "$B" "$O" "$A" "$B"; do
    V "$d" sync >/dev/null 2>"$T/sync-err" || bad "sync of $d: $(cat "$T/sync-err")"
  done
}
sync_all
# Both tablets edit one field of the same record offline: a conflict, then resolved.
expect_exit 0 "edit on A" -- V "$A" record put "$X" contactregistratie --record "$C1" "doorverwezen_naar=$EDIT_A"
expect_exit 0 "edit on B" -- V "$B" record put "$X" contactregistratie --record "$C1" "doorverwezen_naar=$EDIT_B"
sync_all
expect_exit 0 "resolve" -- V "$B" resolve "$C1" doorverwezen_naar "$EDIT_B"
expect_exit 0 "delete a record" -- V "$B" record delete "$C2"
sync_all
sync_all

# Positive control: the data is there, readable where it should be.
V "$O" export >"$T/export-office" 2>/dev/null
for m in "$NAME_X" "$NAME_Y" "$ADDRESS" "$NOTE" "$EDIT_B"; do
  grep -qF -- "$m" "$T/export-office" && ok || bad "control: '$m' is not in the office's export"
done
V "$B" export >"$T/export-b" 2>/dev/null
grep -qF -- "$NOTE" "$T/export-b" && ok || bad "control: B cannot read the synthesis written on A"

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

# --- the hub ---------------------------------------------------------------
N_OBJ=$(git -C "$H" cat-file --batch-all-objects --batch-check | wc -l)
[ "$N_OBJ" -gt 20 ] && ok || bad "the hub holds only $N_OBJ objects"
dump_repo "$H" "$T/hub-dump"
no_marker "hub objects, refs, messages and paths" "$T/hub-dump"
expect_exit 0 "git fsck --strict on the hub" -- git -C "$H" fsck --strict --no-progress
expect_exit 0 "git clone --mirror of the hub" -- git clone -q --mirror "$H" "$T/clone.git"
[ "$(git -C "$T/clone.git" for-each-ref | wc -l)" -eq "$(git -C "$H" for-each-ref | wc -l)" ] && ok \
  || bad "the mirror does not hold every ref of the hub"
dump_repo "$T/clone.git" "$T/clone-dump"
no_marker "mirror clone objects, refs, messages and paths" "$T/clone-dump"
expect_exit 0 "git fsck --strict on the clone" -- git -C "$T/clone.git" fsck --strict --no-progress
# Every pack unpacked into a fresh repository too (objects one by one).
git init -q --bare "$T/unpacked.git"
for p in "$T"/clone.git/objects/pack/*.pack; do
  [ -e "$p" ] || continue
  git -C "$T/unpacked.git" unpack-objects -q <"$p" || bad "unpack-objects $p"
done
git -C "$T/unpacked.git" cat-file --batch-all-objects --batch >"$T/unpacked-dump" 2>/dev/null
[ -s "$T/unpacked-dump" ] && ok || bad "nothing unpacked from the clone's packs"
no_marker "objects unpacked from the clone's packs" "$T/unpacked-dump"
# Paths are ids only: cases/<2 hex>/<32 hex>/<32 hex>, registry/..., keys <32 hex>/<32 hex>.
git -C "$H" for-each-ref --format='%(refname)' | while read -r ref; do git -C "$H" ls-tree -r --name-only "$ref"; done \
  | sort -u >"$T/paths"
if grep -vE '^(cases/[0-9a-f]{2}/[0-9a-f]{32}/[0-9a-f]{32}|registry/org|registry/(devices|revoked)/[0-9a-f]{32}|erased/[0-9a-f]{32}|forms/[a-z_]+/[0-9]+\.lua|[0-9a-f]{32}/[0-9a-f]{32})$' "$T/paths" >"$T/odd-paths"; then
  bad "tree paths that are not ids: $(head -c 300 "$T/odd-paths")"
else ok; fi
git -C "$H" for-each-ref --format='%(refname)' | grep -vE '^refs/(heads/main|veld/devices/[0-9a-f]{32}|veld-keys/[0-9a-f]{32})$' >"$T/odd-refs" \
  && bad "unexpected refs on the hub: $(head -c 300 "$T/odd-refs")" || ok
git -C "$H" log --all --format='%s' | sort -u | grep -vE '^veld (sync|merge|keys|registry)$' >"$T/odd-msgs" \
  && bad "commit messages that are not the fixed ones: $(head -c 300 "$T/odd-msgs")" || ok

# --- the stores ------------------------------------------------------------
for d in "$O" "$A" "$B"; do
  n=$(find "$d" -type f | wc -l)
  [ "$n" -gt 3 ] && ok || bad "$d holds only $n files"
  find "$d" -type f -print0 | xargs -0 cat >"$T/store-bytes"
  no_marker "files of $(basename "$d") (veld.db, WAL, key file, repository files)" "$T/store-bytes"
  dump_repo "$d/repo" "$T/store-repo-dump"
  no_marker "repository of $(basename "$d"), decompressed" "$T/store-repo-dump"
done
# The WAL of a store that is open and writing: A writes, the CLI exits; the
# WAL file (if SQLite kept it) was in the sweep above; check it explicitly.
for d in "$O" "$A" "$B"; do
  for f in "$d"/*-wal "$d"/*-journal; do
    [ -e "$f" ] || continue
    no_marker "$(basename "$f") of $(basename "$d")" "$f"
  done
done

finish
