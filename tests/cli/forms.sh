#!/usr/bin/env bash
# CLI scenario: forms and import — form list|show|check|fill, record put
# validated by the form, import all or nothing with line numbers.
. "$VELD_SRC/tests/support/cli.sh"
S="$T/store"
V() { "$VELD" -C "$S" "$@"; }
V device init --name t --role assistant >/dev/null 2>&1 || bad "device init"
CASE=$(V case new --name "Test Persoon" --postcode 3000)

# Catalogue and schema.
expect_exit 0 "form list" -- V form list --json
for f in contactregistratie sociale_balans woonzoek zoekprofiel vrijetijdspas budgetplan; do
  expect_match "\"name\":\"$f\"" "$T/out" "form $f shipped"
done
expect_exit 0 "form show --json" -- V form show sociale_balans --json
expect_match '"compartment": "social"' "$T/out" "schema names the compartment"
expect_match '"repeating": true' "$T/out" "schema has the repeating group"
expect_exit 1 "form show unknown" -- V form show nope

# form check for authors: a mistake is reported with its line.
cat >"$T/bad.lua" <<'LUA'
form {
	name = "bad", version = 1, compartment = "social", label = "Fout",
	fields = {
		field.date { "datum", label = "Datum" },
		field.wrongtype { "x", label = "X" },
	},
}
LUA
expect_exit 5 "form check finds the mistake" -- V form check "$T/bad.lua"
expect_match 'bad.lua:5' "$T/err" "line of the mistake"
expect_one_error_line "form check"
cp "$VELD_SRC/scripts/forms/woonzoek.lua" "$T/woonzoek.lua"
expect_exit 0 "form check accepts a shipped form" -- V form check "$T/woonzoek.lua"

# form fill on a terminal: a bad date is asked again at once; a required
# field left empty is asked again before storing.
if command -v script >/dev/null; then
  printf '2017-02-30\n2017-02-28\n45\n\n1\n4,5\n\n7\n\nHuur besproken\n\n2017-03-15\nOCMW Leuven\n' |
    script -qc "$VELD -C $S form fill $CASE contactregistratie" /dev/null >"$T/fill" 2>&1
  expect_match 'datum: Datum moet een geldige datum' "$T/fill" "bad date reported at once"
  expect_match 'doorverwezen_naar: Doorverwezen naar is verplicht' "$T/fill" "missing referral asked again"
  expect_match 'opgeslagen: [0-9a-f]{32}' "$T/fill" "record stored"
  REC=$(grep -oE 'opgeslagen: [0-9a-f]{32}' "$T/fill" | cut -d' ' -f2)
  expect_exit 0 "filled record" -- V record show "$REC" --json
  expect_match '"doorverwezen_naar":"OCMW Leuven"' "$T/out" "answer kept"
  expect_match '"datum":"2017-02-28"' "$T/out" "corrected date kept"
  expect_match '"problematiek":\["financieel","materieel"\]' "$T/out" "multi choice by numbers"
  expect_match '"verslag":"Huur besproken"' "$T/out" "the report of the visit kept"
  expect_match '"volgend_contact":"2017-03-15"' "$T/out" "the next contact kept"
else
  bad "script(1) missing: cannot drive form fill on a terminal"
fi
expect_exit 2 "form fill without a terminal" -- V form fill "$CASE" contactregistratie </dev/null

# Import: all or nothing, the bad line named.
cat >"$T/good.jsonl" <<'JL'
{"case":{"ref":"D-17","name":"Imp Een","postcode":"2000"},"form":"contactregistratie","fields":{"datum":"2017-01-01","plaats":"zitdag","problematiek":["materieel"]}}
{"case":{"ref":"D-17"},"form":"contactregistratie","fields":{"datum":"2017-01-02","plaats":"elders","problematiek":["financieel"]}}
{"case":{"ref":"D-18","name":"Imp Twee","postcode":"9000"},"form":"contactregistratie","fields":{"datum":"2017-01-03","plaats":"huisbezoek","problematiek":["gezondheid"]}}
JL
cp "$T/good.jsonl" "$T/bad.jsonl"
echo '{"case":{"ref":"D-18"},"form":"contactregistratie","fields":{"datum":"2017-13-01","plaats":"huisbezoek","problematiek":["gezondheid"]}}' >>"$T/bad.jsonl"
V export >"$T/before"
expect_exit 5 "import with a bad line" -- V import "$T/bad.jsonl"
expect_match 'line 4' "$T/err" "bad line number reported"
expect_one_error_line "import"
V export >"$T/after"
if cmp -s "$T/before" "$T/after"; then ok; else bad "a failed import changed the store"; fi
expect_exit 0 "import" -- V import "$T/good.jsonl" --json
expect_match '"imported":3' "$T/out" "three lines imported"
expect_exit 0 "case list" -- V case list --json
expect_match '"ref":"D-17"' "$T/out" "external reference kept"
expect_match '"name":"Imp Twee".*"records":1|"records":1.*"name":"Imp Twee"' "$T/out" "lines grouped by ref"

# A file that cannot be opened: one line naming it and the OS's reason, exit 1.
for cmd in "import" "record put $CASE contactregistratie --file" "enroll"; do
  expect_exit 1 "$cmd with a missing file" -- V $cmd "$T/geen.jsonl"
  expect_one_error_line "$cmd with a missing file"
  expect_match "^veld: ${cmd%% *}( put)?: cannot open $T/geen.jsonl: No such file or directory\$" "$T/err" \
    "$cmd names the file and the reason"
done
expect_exit 1 "import of a directory" -- V import "$T"
expect_match "^veld: import: cannot read $T: Is a directory\$" "$T/err" "a directory is not read as empty"
expect_exit 1 "form check of a missing file" -- V form check "$T/geen.lua"
expect_match "no form file $T/geen.lua: No such file or directory" "$T/err" "form check names the reason"
expect_exit 1 "report written where it cannot be" -- V report jaarcijfers --year 2017 --out "$T/geen/r.txt"
expect_match "^veld: report: cannot write $T/geen/r.txt: No such file or directory\$" "$T/err" "--out names the reason"
echo '{"datum": ' >"$T/half.json"
expect_exit 5 "record put --file with broken JSON" -- V record put "$CASE" contactregistratie --file "$T/half.json"
expect_match "^veld: record put: $T/half.json: line [0-9]+: " "$T/err" "broken JSON named with its line"

# Reports from the command line: every format, to a file or stdout.
expect_exit 0 "report jaarcijfers json" -- V report jaarcijfers --year 2017 --format json
expect_match '"Zitdag"|zitdag' "$T/out" "contacts by place reported"
expect_exit 0 "report to a file" -- V report jaarcijfers --year 2017 --format html --out "$T/r.html"
if grep -q '<svg' "$T/r.html"; then ok; else bad "HTML report without an SVG chart"; fi
expect_exit 0 "report csv" -- V report jaarcijfers --year 2017 --format csv
expect_match '^[^,]+,' "$T/out" "CSV rows"
expect_exit 1 "unknown report" -- V report geen_rapport
expect_one_error_line "unknown report"
expect_exit 2 "bad year" -- V report jaarcijfers --year twintig
# Without --year: the last full year, said in the output.
expect_exit 0 "report jaarcijfers without a year" -- V report jaarcijfers
expect_match "^Jaarcijfers $(( $(date +%Y) - 1 ))\$" "$T/out" "the last full year by default"
expect_match '\(het laatste volledige jaar\)' "$T/out" "the default year is said"
expect_match "^Opgemaakt op $(date +%d/%m/%Y)\$" "$T/out" "the date the report was made"

finish
