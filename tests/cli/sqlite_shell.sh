#!/usr/bin/env bash
# tests/cli/sqlite_shell.sh — the stock sqlite3 shell with the veld extension
# (core/ext.c): it creates and reads an encrypted database, the file holds no
# plaintext, the shell without the extension or with a wrong passphrase
# cannot read it, and copies to a non-veld destination are refused.
# Environment (from ctest): VELD_EXT (path of veld_sqlite.so), VELD_TEST_TMP.
set -u

SQLITE=${SQLITE:-/usr/bin/sqlite3}
EXT=${VELD_EXT:?VELD_EXT must name veld_sqlite.so}
EXT=${EXT%.so} # .load takes the name without the suffix too
base=${VELD_TEST_TMP:-/tmp}
mkdir -p "$base"
dir=$(mktemp -d "$base/sqlite-shell-XXXXXX")
trap 'rm -rf "$dir"' EXIT

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok - $1"; }
bad() { failed=$((failed + 1)); echo "FAIL - $1"; }
check() { # check NAME COMMAND...: passes when COMMAND succeeds
	local name=$1; shift
	if "$@"; then ok "$name"; else bad "$name"; fi
}
# veld_sql DB SQL...: run SQL on DB through the extension (the documented way).
veld_sql() {
	local db=$1; shift
	"$SQLITE" -batch -bail -cmd ".load $EXT" -cmd ".open $db" :memory: "$@"
}
quiet() { "$@" >/dev/null; }
no_marker() { ! grep -rqa -e "$1" "$2"; }

MARK="Jansje-Vermeulen-Kerkstraat-12"
export VELD_PASSPHRASE="shell test passphrase"
db="$dir/store/veld.db"
mkdir -p "$dir/store"

# 1. A new encrypted database: key file created next to it.
check "create a new database through the extension" \
	veld_sql "$db" "CREATE TABLE person(name TEXT); INSERT INTO person VALUES('$MARK');"
check "key file created next to it" test -s "$dir/store/veld.key"
check "key file is 148 bytes" test "$(stat -c %s "$dir/store/veld.key")" -eq 148

# 2. Read back in a new shell process.
out=$(veld_sql "$db" "SELECT name FROM person;" 2>&1)
check "a new shell process reads it back" test "$out" = "$MARK"

# 3. WAL mode (as the library uses it), many rows, recovery in a new process.
check "WAL mode and many rows" quiet veld_sql "$db" \
	"PRAGMA journal_mode=WAL;" \
	" WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<2000) INSERT INTO person SELECT '$MARK-' || i FROM n;"
out=$(veld_sql "$db" "SELECT count(*) FROM person; PRAGMA integrity_check;" 2>&1)
check "rows and integrity after reopening" test "$out" = "$(printf '2001\nok')"
check "no -shm file (WAL index in memory)" test ! -e "$db-shm"

# 4. No plaintext on disk: not the marker, not the schema, not SQLite's magic.
check "no plaintext marker in the directory" no_marker "$MARK" "$dir/store"
check "no plaintext schema in the directory" no_marker "CREATE TABLE" "$dir/store"
check "no SQLite magic in the file" no_marker "SQLite format 3" "$db"

# 5. Without the extension the shell cannot read it.
out=$("$SQLITE" -batch "$db" "SELECT name FROM person;" 2>&1)
rc=$?
check "stock shell without the extension fails" test $rc -ne 0
check "... saying it is not a database" grep -q "not a database" <<<"$out"

# 6. A wrong or missing passphrase fails, and changes nothing.
before=$(sha256sum "$db" "$dir/store/veld.key")
out=$(VELD_PASSPHRASE="wrong" veld_sql "$db" "SELECT name FROM person;" 2>&1)
rc=$?
check "wrong passphrase fails" test $rc -ne 0
check "... with a clear message" grep -q "wrong passphrase" <<<"$out"
out=$(env -u VELD_PASSPHRASE "$SQLITE" -batch -cmd ".load $EXT" -cmd ".open $db" :memory: \
	"SELECT name FROM person;" 2>&1)
rc=$?
check "missing VELD_PASSPHRASE fails" test $rc -ne 0
check "... naming the variable" grep -q VELD_PASSPHRASE <<<"$out"
check "failed opens changed nothing" test "$before" = "$(sha256sum "$db" "$dir/store/veld.key")"

# 7. A database opened before the extension is loaded uses the default VFS.
out=$("$SQLITE" -batch -cmd ".load $EXT" "$db" "SELECT name FROM person;" 2>&1)
check "db named on the command line is opened before .load (fails)" test $? -ne 0

# 8. Copies: .backup and VACUUM INTO through veld are sealed; other VFSes refused.
cd "$dir/store" || exit 1
check ".backup to a plain name works" veld_sql "$db" ".backup $dir/store/copy.db"
check "... and the copy is sealed" no_marker "$MARK" "$dir/store/copy.db"
out=$(veld_sql "$dir/store/copy.db" "SELECT count(*) FROM person;" 2>&1)
check "... and opens through veld" test "$out" = "2001"
check "VACUUM INTO a plain name works" veld_sql "$db" "VACUUM INTO '$dir/store/vac.db';"
check "... and the copy is sealed" no_marker "$MARK" "$dir/store/vac.db"
veld_sql "$db" ".backup file:$dir/plain1.db?vfs=unix" >/dev/null 2>&1
check ".backup to ?vfs=unix is refused" test "$(stat -c %s "$dir/plain1.db" 2>/dev/null || echo 0)" -eq 0
veld_sql "$db" ".backup --append $dir/plain2.db" >/dev/null 2>&1
check ".backup --append is refused" test "$(stat -c %s "$dir/plain2.db" 2>/dev/null || echo 0)" -eq 0
out=$(veld_sql "$db" "VACUUM INTO 'file:$dir/plain3.db?vfs=unix';" 2>&1)
check "VACUUM INTO ?vfs=unix is refused" grep -q "authorization denied" <<<"$out"
out=$(veld_sql "$db" "ATTACH 'file:$dir/plain4.db?vfs=unix' AS p;" 2>&1)
check "ATTACH ?vfs=unix is refused" grep -q "not authorized" <<<"$out"
check "... and creates nothing" test ! -e "$dir/plain4.db"
check "no plaintext anywhere in the test directory" no_marker "$MARK" "$dir"

# 9. A new database in a second directory gets its own key file.
mkdir -p "$dir/other"
check "second store, own key file" veld_sql "$dir/other/x.db" "CREATE TABLE t(x);"
differ() { ! cmp -s "$1" "$2"; }
check "... a different key file" differ "$dir/other/veld.key" "$dir/store/veld.key"
check "... key file there" test -s "$dir/other/veld.key"

echo "$passed passed, $failed failed"
test "$failed" -eq 0
