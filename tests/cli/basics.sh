#!/usr/bin/env bash
# CLI scenario: the contract of docs/cli.md for what exists now —
# device init, case new|list|show, record put|show|delete, export, passwd,
# verify, audit; --json; exit codes; one-line errors; all or nothing.
. "$VELD_SRC/tests/support/cli.sh"
S="$T/store"
V() { "$VELD" -C "$S" "$@"; }

# Usage errors: exit 2.
expect_exit 2 "no command" -- "$VELD"
expect_exit 2 "unknown command" -- V frobnicate
expect_exit 2 "passphrase as an argument is refused" -- V --passphrase secret case list
expect_exit 2 "device init without role" -- V device init --name x

# No store yet: exit 1 with one error line.
expect_exit 1 "missing store" -- V case list
expect_one_error_line "missing store"

# Create the store; the enrolment request holds public keys only.
expect_exit 0 "device init" -- V device init --name tablet-1 --role assistant --out "$T/req.json"
expect_match '"sign_pk":"[0-9a-f]{64}"' "$T/req.json" "request has the signing key"
expect_no_match 'sk' "$T/req.json" "request has no secret key"
expect_exit 1 "device init twice" -- V device init --name tablet-1 --role assistant
expect_exit 5 "bad role" -- "$VELD" -C "$T/other" device init --name x --role boss

# Cases.
expect_exit 0 "case new" -- V case new --name "An Peeters" --postcode 1500 --birth 1980-04-01
CASE=$(cat "$T/out")
expect_match '^[0-9a-f]{32}$' "$T/out" "case id printed"
expect_exit 5 "case new with bad postcode" -- V case new --name "X" --postcode 15
expect_one_error_line "bad postcode"
expect_match 'postcode' "$T/err" "error names the field"
expect_exit 0 "case list --json" -- V case list --json
expect_match "\"id\":\"$CASE\"" "$T/out" "case listed"
expect_match '"name":"An Peeters"' "$T/out" "name shown to the owner"

# case update and case new --file: a client's data from a file or stdin.
printf '{"phone":"0470 12 34 56","address":"Kerkstraat 1"}' >"$T/hdr.json"
expect_exit 0 "case update --file" -- V case update "$CASE" --file "$T/hdr.json" --postcode 1501
expect_exit 0 "case show after update" -- V case show "$CASE" --json
expect_match '"phone":"0470 12 34 56"' "$T/out" "the phone from the file"
expect_match '"postcode":"1501"' "$T/out" "the option over the file"
expect_exit 5 "case update with a birth date in the future" -- V case update "$CASE" --birth 2999-01-01
expect_match 'birth' "$T/err" "the refusal names the field"
expect_exit 2 "case update without a case" -- V case update --name X
printf '{"name":"Bea Claes","postcode":"1500"}' >"$T/new.json"
expect_exit 0 "case new --file -" -- V case new --file - <"$T/new.json"
expect_match '^[0-9a-f]{32}$' "$T/out" "case id printed for a case from stdin"
expect_exit 1 "case new --file on a missing file" -- V case new --file "$T/nothing.json"
expect_match 'nothing.json' "$T/err" "names the file"

# Consent as data: who and when; withdrawn; a share taken back.
expect_exit 0 "case consent" -- V case consent "$CASE" --scope huiswijs
expect_exit 0 "case show after consent" -- V case show "$CASE" --json
expect_match '"toestemming\.huiswijs":"[0-9]{4}-[0-9]{2}-[0-9]{2}"' "$T/out" "consent date in the header"
expect_match '"toestemming_door\.huiswijs":"[0-9a-f]{32}"' "$T/out" "who recorded the consent"
expect_exit 0 "case consent --withdraw" -- V case consent "$CASE" --scope huiswijs --withdraw
expect_exit 0 "case show after withdrawal" -- V case show "$CASE" --json
expect_match '"toestemming_ingetrokken\.huiswijs":"[0-9]{4}-' "$T/out" "the withdrawal in the header"
expect_exit 5 "case consent with an unknown scope" -- V case consent "$CASE" --scope everything
expect_exit 2 "case unshare without --with" -- V case unshare "$CASE" --scope huiswijs
expect_exit 1 "case unshare of an unknown device" -- V case unshare "$CASE" --with 0123456789abcdef0123456789abcdef --scope huiswijs
expect_match 'no enrolled device' "$T/err" "the refusal names what is missing"

# Records: FIELD=TEXT and FIELD:=JSON and --file.
expect_exit 0 "record put" -- V record put "$CASE" contactregistratie datum=2017-03-02 plaats=huisbezoek 'problematiek:=["financieel","materieel"]' 'duur_min:=45'
REC=$(cat "$T/out")
expect_exit 0 "record put --file" -- V record put "$CASE" sociale_balans --file "$VELD_SRC/tests/resources/sociale_balans-2019.json" afnamedatum=2019-01-02
BAL=$(cat "$T/out")
expect_exit 0 "record show --json" -- V record show "$BAL" --json
expect_match '"actievoorstellen.a1.status":"gepland"' "$T/out" "group flattened"
expect_match '"afnamedatum":"2019-01-02"' "$T/out" "FIELD=TEXT overrides --file"
expect_match '"_form_version"|"form_version":1' "$T/out" "form version remembered"

# The form's rules: every failing field listed, exit 5, nothing stored.
expect_exit 5 "invalid contact" -- V record put "$CASE" contactregistratie datum=2017-02-30
expect_one_error_line "invalid contact"
expect_match 'datum' "$T/err" "bad date named"
expect_match 'plaats' "$T/err" "missing place named"
expect_match 'problematiek' "$T/err" "missing problem named"
expect_exit 5 "referral without destination" -- V record put "$CASE" contactregistratie datum=2017-03-02 plaats=zitdag 'problematiek:=["financieel"]' 'wijze_van_hulpverlening:=["doorverwijzing"]'
expect_match 'doorverwezen_naar' "$T/err" "conditional requirement named"
expect_exit 5 "unknown form" -- V record put "$CASE" geen_formulier x=1
expect_exit 0 "record update" -- V record put "$CASE" contactregistratie --record "$REC" plaats=zitdag
expect_exit 0 "record show" -- V record show "$REC" --json
expect_match '"plaats":"zitdag"' "$T/out" "update shown"
expect_match '"duur_min":45' "$T/out" "JSON value kept as a number"
expect_exit 5 "bad JSON value" -- V record put "$CASE" contactregistratie 'duur_min:=4x'
# One encoding per value: an integral real in an int field (or an integer
# choice, or a multi-choice) is stored as the integer; a fraction is refused.
for n in 45.0 -0.0 1e2; do
  want=$(case $n in 45.0) echo 45;; -0.0) echo 0;; 1e2) echo 100;; esac)
  expect_exit 0 "record put duur_min:=$n" -- V record put "$CASE" contactregistratie datum=2017-03-03 plaats=zitdag 'problematiek:=["financieel"]' "duur_min:=$n"
  expect_exit 0 "record show ($n)" -- V record show "$(cat "$T/out")" --json
  expect_match "\"duur_min\":$want[,}]" "$T/out" "duur_min:=$n stored as $want"
done
expect_exit 5 "a fraction in an int field" -- V record put "$CASE" contactregistratie datum=2017-03-03 plaats=zitdag 'problematiek:=["financieel"]' 'duur_min:=45.5'
sed '/"huisvesting"/,/}/s/"score": 2,/"score": 2.0,/' "$VELD_SRC/tests/resources/sociale_balans-2019.json" >"$T/score.json"
expect_exit 0 "record put a score of 2.0" -- V record put "$CASE" sociale_balans --file "$T/score.json" afnamedatum=2019-02-01
expect_exit 0 "record show (score)" -- V record show "$(cat "$T/out")" --json
expect_match '"huisvesting.score":2[,}]' "$T/out" "an integer choice stored as the integer"
expect_exit 5 "bad --file" -- V record put "$CASE" contactregistratie --file /dev/null
expect_exit 1 "unknown record" -- V record show 0123456789abcdef0123456789abcdef

# All or nothing: a rejected put changes nothing.
V export >"$T/before"
expect_exit 5 "reserved field" -- V record put "$CASE" contactregistratie _deleted:=true
V export >"$T/after"
if cmp -s "$T/before" "$T/after"; then ok; else bad "rejected put changed the store"; fi

# Delete is a tombstone, visible in the export.
expect_exit 0 "record delete" -- V record delete "$REC"
expect_exit 5 "delete twice" -- V record delete "$REC"
expect_exit 0 "case show" -- V case show "$CASE" --json
expect_no_match "$REC" "$T/out" "deleted record not listed"
expect_exit 0 "export" -- V export
expect_match "\"deleted\":true" "$T/out" "tombstone exported"

# Audit log.
expect_exit 0 "audit" -- V audit "$CASE" --json
expect_match '"action":"delete-record"' "$T/out" "delete audited"
expect_match '"action":"open-case"' "$T/out" "open audited"

# Wrong passphrase: exit 3, nothing touched.
cp "$S/veld.key" "$T/key.before"
VELD_PASSPHRASE=wrong expect_exit 3 "wrong passphrase" -- V case list
expect_one_error_line "wrong passphrase"
if cmp -s "$S/veld.key" "$T/key.before"; then ok; else bad "key file changed"; fi
printf 'test passphrase\n' >"$T/pass"
(unset VELD_PASSPHRASE; expect_exit 0 "--passphrase-file" -- V --passphrase-file "$T/pass" case list; echo "$PASSED $FAILED" >"$T/sub")
read -r p f <"$T/sub"; PASSED=$p; FAILED=$f
(unset VELD_PASSPHRASE; expect_exit 3 "no passphrase source, no tty" -- V case list </dev/null; echo "$PASSED $FAILED" >"$T/sub")
read -r p f <"$T/sub"; PASSED=$p; FAILED=$f

# passwd.
VELD_NEW_PASSPHRASE="second passphrase" expect_exit 0 "passwd" -- V passwd
expect_exit 3 "old passphrase refused" -- V case list
VELD_PASSPHRASE="second passphrase" expect_exit 0 "new passphrase works" -- V verify

# Tamper: a flipped byte in the key file, then in a data page.
export VELD_PASSPHRASE="second passphrase"
cp "$S/veld.key" "$T/key.good"
# flip FILE OFFSET: invert the byte's bits (writing a fixed value would change
# nothing when the byte, random salt, nonce or ciphertext, already holds it)
flip() {
  local byte
  byte=$(od -An -tu1 -j"$2" -N1 "$1" | tr -d ' ')
  printf "\\$(printf %03o $((byte ^ 255)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
flip "$S/veld.key" 40

V case list >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 3 ] || [ $rc -eq 4 ]; then ok; else bad "tampered key file: exit $rc"; fi
expect_one_error_line "tampered key file"
cp "$T/key.good" "$S/veld.key"

flip "$S/veld.db" $((4096 + 200))
expect_exit 4 "tampered page" -- V verify
expect_match 'page [0-9]+' "$T/err" "error names the page"
expect_one_error_line "tampered page"

# Text typed on another device reaches the terminal without its control
# characters; a name that is not UTF-8 is refused as input, by its option.
S_MAIN=$S S=$T/names
expect_exit 0 "device init (names)" -- V device init --name names --role assistant --out "$T/names.json"
expect_exit 0 "case new with an escape sequence" -- V case new --name $'Jan\e]0;pwned\aJanssens' --postcode 1500
NCASE=$(cat "$T/out")
for cmd in "case list" "case show $NCASE"; do
  expect_exit 0 "$cmd (escapes)" -- V $cmd
  if LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$T/out"; then bad "$cmd prints a control character"; else ok; fi
  expect_match 'Jan\\x1b\]0;pwned\\x07Janssens' "$T/out" "$cmd shows the escapes as \\xNN"
done
expect_exit 0 "case show --json (escapes)" -- V case show "$NCASE" --json
expect_match 'Jan\\u001[bB]\]0;pwned\\u0007Janssens' "$T/out" "--json keeps the name, escaped as JSON"
expect_exit 5 "case new with a name that is not UTF-8" -- V case new --name $'Jan\xff' --postcode 1500
expect_one_error_line "name not UTF-8"
expect_match '--name is not valid UTF-8' "$T/err" "the refusal names the option"
S=$S_MAIN

# Nothing readable on disk.
if grep -rqa "An Peeters" "$S"; then bad "name found in the store"; else ok; fi
if grep -rqa "huisbezoek" "$S"; then bad "field text found in the store"; else ok; fi

finish
