#!/usr/bin/env bash
# CLI scenario: damage is exit 4 with one line in veld's words naming the
# file and the page or object (docs/operations.md, "Checking a store");
# input that names no case, or a case id that is too long, is exit 5 and
# imports nothing.  (tests/unit/integrity.c flips hundreds of random bits;
# this is the contract as `veld` shows it, one damage of each kind.)
#
#   - a flipped byte inside a pack index, in its trailing checksum, and in a
#     pack of the store's repository: `veld verify` exits 4 naming the file
#     and this store's repository;
#   - the same in the hub's pack index: the office's `veld verify` exits 4
#     naming the hub;
#   - a page of veld.db: `veld verify` exits 4, "page N of veld.db";
#   - veld.key: every command exits 4 naming veld.key;
#   - `veld import` of a line for an unknown case, or with a case id of 34
#     hex digits (never cut to the 32 of another case): exit 5, nothing
#     imported.
. "$VELD_SRC/tests/support/cli.sh"

export HOME="$T/home" GIT_CONFIG_NOSYSTEM=1
mkdir -p "$HOME"
O="$T/office" HUB="$T/hub.git"

# flip FILE OFFSET: flip the lowest bit of the byte at OFFSET.
flip() {
  local f=$1 off=$2 b
  chmod u+w "$f"
  b=$(od -An -tu1 -j "$off" -N1 "$f" | tr -d ' ')
  printf "$(printf '\\%03o' $((b ^ 1)))" | dd of="$f" bs=1 seek="$off" conv=notrunc status=none
}

# fresh: a copy of the pristine office store (and hub) to damage.
fresh() {
  rm -rf "$T/s" "$HUB"
  cp -a "$T/office.good" "$T/s"
  cp -a "$T/hub.good" "$HUB"
}

# damaged WHAT PATTERN -- COMMAND...: exit 4, one line matching PATTERN.
damaged() {
  local what=$1 pat=$2
  shift 3
  expect_exit 4 "$what" -- "$@"
  expect_one_error_line "$what"
  expect_match "$pat" "$T/err" "$what: the message names it"
}

expect_exit 0 "org init" -- "$VELD" -C "$O" org init --name "Testorganisatie" --hub "$HUB"
expect_exit 0 "case new" -- "$VELD" -C "$O" case new --name "Jan Janssens" --postcode 3000
X=$(cat "$T/out")
expect_exit 0 "record put" -- "$VELD" -C "$O" record put "$X" contactregistratie datum=2017-01-02 plaats=huisbezoek \
  'problematiek:=["financieel"]'
expect_exit 0 "sync" -- "$VELD" -C "$O" sync
expect_exit 0 "verify of an intact store" -- "$VELD" -C "$O" verify
cp -a "$O" "$T/office.good"
cp -a "$HUB" "$T/hub.good"

idx=$(ls "$T/office.good/repo/objects/pack/"*.idx | head -n1)
idx=${idx##*/}
fresh
flip "$T/s/repo/objects/pack/$idx" 1100
damaged "a byte inside a pack index" "this store's .*$idx" -- "$VELD" -C "$T/s" verify
fresh
flip "$T/s/repo/objects/pack/$idx" $(($(stat -c %s "$T/s/repo/objects/pack/$idx") - 1))
damaged "the pack index's own checksum" "$idx is damaged: its checksum" -- "$VELD" -C "$T/s" verify
fresh
pack=${idx%.idx}.pack
flip "$T/s/repo/objects/pack/$pack" 100
damaged "a byte inside a pack" "this store's .*$pack" -- "$VELD" -C "$T/s" verify

hidx=$(ls "$HUB/objects/pack/"*.idx | head -n1)
fresh
flip "$hidx" 1100
damaged "a byte of the hub's pack index" "the hub $HUB: .*${hidx##*/}" -- "$VELD" -C "$T/s" verify

fresh
flip "$T/s/veld.db" $((2 * 4096 + 500))
damaged "page 3 of veld.db" "page 3 of veld.db fails authentication" -- "$VELD" -C "$T/s" verify

fresh
flip "$T/s/veld.key" 30
damaged "a byte of veld.key" "veld.key" -- "$VELD" -C "$T/s" case list

fresh
printf '{"case":"0123456789abcdef0123456789abcdef","form":"contactregistratie","fields":{"datum":"2017-01-05","plaats":"huisbezoek","problematiek":["financieel"]}}\n' >"$T/unknown.jsonl"
expect_exit 5 "import into an unknown case" -- "$VELD" -C "$T/s" import "$T/unknown.jsonl"
expect_match "no case 0123456789abcdef0123456789abcdef" "$T/err" "the import names the unknown case"
printf '{"case":"%s","form":"contactregistratie","fields":{"datum":"2017-01-05","plaats":"huisbezoek","problematiek":["financieel"]}}\n' \
  "${X}ab" >"$T/long.jsonl"
expect_exit 5 "import with a case id of 34 digits" -- "$VELD" -C "$T/s" import "$T/long.jsonl"
expect_exit 0 "case show after the imports" -- "$VELD" -C "$T/s" --json case show "$X"
[ "$(grep -o '"form":"contactregistratie"' "$T/out" | wc -l)" -eq 1 ] && ok ||
  bad "an import that failed added a record to case $X: $(head -c 300 "$T/out")"

finish
