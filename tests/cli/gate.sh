#!/usr/bin/env bash
# CLI scenario: one gate for every value (docs/cli.md, docs/forms.md) —
# `veld resolve` is checked by the form like `record put` (exit 5 naming
# the field, nothing stored); a value given to a hidden field is refused by
# put, import and resolve; a text without max_length holds 10,000
# characters and a record 256 KiB; a case's birth date is a day of the
# calendar, not in the future.
. "$VELD_SRC/tests/support/cli.sh"
S="$T/store"
V() { "$VELD" -C "$S" "$@"; }
V device init --name t --role assistant >/dev/null 2>&1 || bad "device init"
CASE=$(V case new --name "Test Persoon" --postcode 3000 --birth 1980-01-01)
REC=$(V record put "$CASE" contactregistratie datum=2018-02-03 plaats=huisbezoek 'problematiek:=["materieel"]' \
  'duur_min:=30')

# resolve: the form's checks, one error line naming the field, nothing stored.
expect_exit 5 "resolve plaats maan" -- V resolve "$REC" plaats maan
expect_one_error_line "resolve plaats maan"
expect_match 'plaats' "$T/err" "the refusal names plaats"
expect_exit 5 "resolve duur_min over its max" -- V resolve "$REC" duur_min 99999
expect_match 'duur_min' "$T/err" "the refusal names duur_min"
expect_exit 5 "resolve duur_min with text" -- V resolve "$REC" duur_min '"lang"'
expect_exit 0 "record after the refusals" -- V record show "$REC" --json
expect_match '"plaats":"huisbezoek"' "$T/out" "plaats unchanged"
expect_match '"duur_min":30' "$T/out" "duur_min unchanged"
expect_exit 0 "resolve with a value the form takes" -- V resolve "$REC" duur_min 45
expect_exit 0 "record after the resolve" -- V record show "$REC" --json
expect_match '"duur_min":45' "$T/out" "resolved value stored"
expect_exit 5 "resolve --pick without a conflict" -- V resolve "$REC" duur_min --pick 1
expect_one_error_line "resolve --pick without a conflict"

# A hidden field: refused by put, import and resolve.
expect_exit 5 "put into a hidden field" -- V record put "$CASE" contactregistratie --record "$REC" doorverwezen_naar=OCMW
expect_match 'doorverwezen_naar' "$T/err" "the refusal names the hidden field"
expect_exit 5 "a list into a hidden text field" -- V record put "$CASE" contactregistratie --record "$REC" \
  'doorverwezen_naar:=["a"]'
big=$(head -c 20000 /dev/zero | tr '\0' x)
printf '{"case":"%s","form":"contactregistratie","fields":{"datum":"2018-01-01","plaats":"zitdag","problematiek":["materieel"],"doorverwezen_naar":"%s"}}\n' \
  "$CASE" "$big" >"$T/hidden.jsonl"
expect_exit 5 "import into a hidden field" -- V import "$T/hidden.jsonl"
expect_match 'line 1: .*doorverwezen_naar' "$T/err" "import names the line and the field"
expect_exit 0 "case list after the import" -- V --json case list
expect_match '"records":1' "$T/out" "nothing imported"
expect_exit 0 "a visible referral is taken" -- V record put "$CASE" contactregistratie --record "$REC" \
  'wijze_van_hulpverlening:=["doorverwijzing"]' doorverwezen_naar=OCMW
expect_exit 0 "the referral hidden again" -- V record put "$CASE" contactregistratie --record "$REC" \
  'wijze_van_hulpverlening:=null'
expect_exit 5 "resolve of a hidden field" -- V resolve "$REC" doorverwezen_naar CAW
expect_match 'doorverwezen_naar' "$T/err" "resolve names the hidden field"
expect_exit 0 "a hidden field cleared" -- V resolve "$REC" doorverwezen_naar null

# Size bounds: a text without max_length, and a record.
balans() { # N_TEXTS LEN: a Sociale Balans with N domain texts of LEN characters
  local t i=0 d
  t=$(head -c "$2" /dev/zero | tr '\0' b)
  printf '{"afnamedatum":"2024-03-01"'
  for d in familiale_situatie huisvesting gezondheid_lichamelijk gezondheid_psychisch inkomen budget_schulden \
    administratie mobiliteit opleiding_vorming werk vrije_tijd zelfvertrouwen communicatie ict_vaardigheden \
    sociaal_netwerk organisatie_planning; do
    printf ',"%s":{"score":"nvt"' "$d"
    [ "$i" -lt "$1" ] && printf ',"stabiliserend":"%s"' "$t"
    [ $((i + 16)) -lt "$1" ] && printf ',"destabiliserend":"%s"' "$t"
    printf '}'
    i=$((i + 1))
  done
  printf '}\n'
}
balans 1 10001 >"$T/long-text.json"
expect_exit 5 "a text of 10,001 characters" -- V record put "$CASE" sociale_balans --file "$T/long-text.json"
expect_match 'hoogstens 10000 tekens' "$T/err" "the refusal gives the bound"
balans 1 10000 >"$T/text.json"
expect_exit 0 "a text of 10,000 characters" -- V record put "$CASE" sociale_balans --file "$T/text.json"
balans 30 9000 >"$T/big.json"
expect_exit 5 "a record over 256 KiB" -- V record put "$CASE" sociale_balans --file "$T/big.json"
expect_match '256 KiB' "$T/err" "the refusal gives the record bound"

# Birth dates.
expect_exit 5 "birth 2024-02-30" -- V case new --name X --postcode 3000 --birth 2024-02-30
expect_match "birth" "$T/err" "the refusal names birth"
expect_exit 5 "birth in the future" -- V case new --name X --postcode 3000 --birth 2199-01-01
expect_match "future" "$T/err" "the refusal says future"
expect_exit 5 "resolve of birth in the future" -- V resolve "$CASE" birth 2199-01-01
expect_exit 0 "birth 2024-02-29" -- V case new --name X --postcode 3000 --birth 2024-02-29
finish
