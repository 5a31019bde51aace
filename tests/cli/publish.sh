#!/usr/bin/env bash
# CLI scenario: forms and reports the office publishes (docs/cli.md, `form
# publish`, `report publish`, `form list`; docs/forms.md, "Versions"), over
# a hub on a path.
#
#   - `form publish` is the office's: a device is refused (exit 4); a form
#     that fails its checks is input rejected (exit 5), and so is a version
#     not above the one held; a file not there is exit 1;
#   - once the office and a device synced, the device's `form list` shows
#     the published version beside the shipped one, and a put without the
#     new required field exits 5;
#   - a device that did not sync keeps writing version 2 and the office
#     accepts those records (nothing rejected); the records keep their
#     versions; `report jaarcijfers` counts both;
#   - `report publish` gives a report its next version, which devices run.
. "$VELD_SRC/tests/support/cli.sh"

export HOME="$T/home" GIT_CONFIG_NOSYSTEM=1
mkdir -p "$HOME"
O="$T/office" A="$T/a" B="$T/b" HUB="$T/hub.git"
V() { "$VELD" -C "$@"; }

expect_exit 0 "org init" -- V "$O" org init --name "Testorganisatie" --hub "$HUB"
for d in "$A" "$B"; do
  expect_exit 0 "device init" -- V "$d" device init --name "tablet-${d##*/}" --role assistant --out "$d.json"
  expect_exit 0 "enroll" -- V "$O" enroll "$d.json" --region 3000-3499
done
expect_exit 0 "office sync" -- V "$O" sync
for d in "$A" "$B"; do
  expect_exit 0 "join" -- V "$d" join --hub "$HUB"
  expect_exit 0 "first sync" -- V "$d" sync
done
CASE=$(V "$A" case new --name "Els Wouters" --postcode 3000)
expect_exit 0 "device sync" -- V "$A" sync
expect_exit 0 "office sync" -- V "$O" sync
for d in "$A" "$B"; do expect_exit 0 "device sync" -- V "$d" sync; done

# Version 3 of contactregistratie: a new required field.
sed -e 's/version = 2,/version = 3,/' \
  -e 's/^\tfields = {$/\tfields = {\n\t\tfield.choice { "kanaal", label = "Kanaal", required = true, options = { { "fysiek", "Fysiek" }, { "op_afstand", "Op afstand" } } },/' \
  "$VELD_SRC/scripts/forms/contactregistratie.lua" >"$T/contactregistratie.lua"
grep -q '"kanaal"' "$T/contactregistratie.lua" && ok || bad "the test form was not made"
mkdir -p "$T/bad"
printf 'form { name = "contactregistratie", version = 9 }\n' >"$T/bad/contactregistratie.lua"

expect_exit 4 "a device publishes" -- V "$A" form publish "$T/contactregistratie.lua"
expect_one_error_line "a device publishes"
expect_exit 5 "a form that fails its checks" -- V "$O" form publish "$T/bad/contactregistratie.lua"
expect_one_error_line "a form that fails its checks"
expect_exit 1 "no such file" -- V "$O" form publish "$T/none/contactregistratie.lua"
expect_exit 0 "office publishes version 3" -- V "$O" --json form publish "$T/contactregistratie.lua"
expect_match '^\{"kind":"form","name":"contactregistratie","version":3\}$' "$T/out" "publish prints what it published"
expect_exit 5 "the same version again" -- V "$O" form publish "$T/contactregistratie.lua"
expect_match 'not above' "$T/err" "says the version must rise"
expect_exit 0 "office sync" -- V "$O" sync
expect_exit 0 "A syncs" -- V "$A" sync

expect_exit 0 "form list" -- V "$A" --json form list
expect_match '"name":"contactregistratie"[^]]*"version":3,"versions":\[\{"origin":"shipped","version":2\},\{"origin":"published","version":3\}\]' \
  "$T/out" "A lists both versions"
expect_exit 0 "form list on B" -- V "$B" --json form list
expect_match '"name":"contactregistratie"[^]]*"versions":\[\{"origin":"shipped","version":2\}\]' "$T/out" \
  "B, offline, holds version 2 only"

F=(datum=2017-03-01 plaats=huisbezoek 'problematiek:=["financieel"]')
expect_exit 5 "A without the new field" -- V "$A" record put "$CASE" contactregistratie "${F[@]}"
expect_match 'kanaal' "$T/err" "names the new field"
expect_exit 0 "A with the new field" -- V "$A" record put "$CASE" contactregistratie "${F[@]}" kanaal=fysiek
R3=$(cat "$T/out")
expect_exit 0 "B offline writes version 2" -- V "$B" record put "$CASE" contactregistratie "${F[@]}"
R2=$(cat "$T/out")
expect_exit 0 "A syncs" -- V "$A" sync
expect_exit 0 "B syncs" -- V "$B" --json sync
expect_exit 0 "office accepts both" -- V "$O" --json sync
expect_match '"rejected":\[\]' "$T/out" "nothing rejected"
expect_exit 0 "show v3" -- V "$O" --json record show "$R3"
expect_match '"form_version":3' "$T/out" "version 3 kept"
expect_exit 0 "show v2" -- V "$O" --json record show "$R2"
expect_match '"form_version":2' "$T/out" "version 2 kept"
expect_exit 0 "report" -- V "$O" report jaarcijfers --year 2017
expect_match 'waren er 2 contacten' "$T/out" "the report counts both versions"

# A report: its next version, run by the devices.
sed -e 's/title = "Aard van de contacten",/title = "Aard van de contacten (gepubliceerd)",/' \
  "$VELD_SRC/scripts/reports/jaarcijfers.lua" >"$T/jaarcijfers.lua"
printf 'return {\n' >"$T/bad/jaarcijfers.lua"
expect_exit 4 "a device publishes a report" -- V "$A" report publish "$T/jaarcijfers.lua"
expect_exit 5 "a report that does not compile" -- V "$O" report publish "$T/bad/jaarcijfers.lua"
expect_exit 0 "office publishes a report" -- V "$O" --json report publish "$T/jaarcijfers.lua"
expect_match '"version":2' "$T/out" "the report's next version"
expect_exit 0 "office sync" -- V "$O" sync
expect_exit 0 "B syncs" -- V "$B" sync
expect_exit 0 "B runs the report" -- V "$B" report jaarcijfers --year 2017
expect_match 'waren er 2 contacten' "$T/out" "B counts both versions"
expect_match 'Aard van de contacten \(gepubliceerd\)' "$T/out" "B runs the published version"
expect_exit 0 "A runs the shipped one until it syncs" -- V "$A" report jaarcijfers --year 2017
expect_no_match 'gepubliceerd' "$T/out" "A runs the shipped version"

finish
