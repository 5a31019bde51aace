# tests/support/hub.sh — start and stop a smart-HTTP hub (tools/hub) from a
# shellcheck shell=bash
# test.  Sourced (after tests/support/cli.sh, or alone); not a test itself.
#
#   hub_start DIR OFFICE [USER...]
#       tools/hub init DIR --office OFFICE, one user per name (OFFICE
#       included) with a random password kept in DIR/.test-credentials/,
#       start, wait until the server answers; exports HUB_URL and HUB_DIR.
#       The server is stopped when the test exits, however it exits: an
#       EXIT trap (chained before any trap already set, e.g. cli.sh's
#       scratch-dir removal), and a watchdog outside the test's process
#       group for when the test itself is killed.  On a failure (non-zero
#       exit or FAILED > 0) the hub's logs are printed to stderr.
#   hub_stop DIR        stop and wait; returns non-zero if anything is left
#   hub_add_user USER   one more login on the hub started last ($HUB_DIR),
#                       its random password kept like hub_start keeps them
#   hub_add_office DIR  after `veld org init` in store DIR: its device id
#                       becomes a login (hub_add_user) and the office user
#                       (veld.office) of the hub started last; prints the id
#   hub_git USER ARGS...          git as USER (credential helper; the
#                                 password never appears on a command line)
#   hub_git_pwfile USER FILE ARGS...   same with the password in FILE
#   hub_git_anon ARGS...          git with no credentials at all
#   hub_http METHOD PATH [USER [PWFILE]]   status code of a raw request
#   hub_port_open PORT            something listens on 127.0.0.1:PORT
#   hub_dump_logs DIR             print the hub's logs to stderr
#   hub_need_lighttpd             fail the test (bad, finish, exit 1) when
#                                 lighttpd is missing; /usr/sbin on PATH

: "${VELD_SRC:?VELD_SRC must name the source tree}"
HUB_TOOL="$VELD_SRC/tools/hub"
_HUB_DIRS=()
_HUB_PREV_EXIT=""
_HUB_TRAPPED=""
# The test's stderr as it is now: a trap may run while a command's stderr
# is redirected (expect_exit ... 2>"$T/err"), and the logs must not end
# up in a file about to be removed.
exec {_HUB_STDERR}>&2

_hub_on_exit() {
  local rc=$? d
  for d in "${_HUB_DIRS[@]}"; do
    [ -n "$d" ] || continue
    if [ "$rc" -ne 0 ] || [ "${FAILED:-0}" -ne 0 ]; then hub_dump_logs "$d" 2>&"$_HUB_STDERR"; fi
    hub_stop "$d" >/dev/null 2>&1 || true
  done
  if [ -n "$_HUB_PREV_EXIT" ]; then eval "$_HUB_PREV_EXIT"; fi
  exit "$rc"
}

# shellcheck disable=SC2120  # "set --" below parses `trap -p`, not arguments
_hub_install_trap() {
  [ -z "$_HUB_TRAPPED" ] || return 0
  local prev
  prev=$(trap -p EXIT)
  if [ -n "$prev" ]; then
    eval "set -- $prev"   # trap -- 'COMMAND' EXIT
    _HUB_PREV_EXIT=$3
  fi
  trap _hub_on_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
  _HUB_TRAPPED=1
}

hub_need_lighttpd() {
  if ! command -v lighttpd >/dev/null && [ ! -x /usr/sbin/lighttpd ]; then
    bad "lighttpd is not installed (run tools/setup)"
    finish
    exit 1
  fi
  PATH=$PATH:/usr/sbin
}

hub_dump_logs() {
  local d=$1 f
  for f in "$d"/logs/error.log "$d"/logs/start.log "$d"/logs/access.log; do
    [ -s "$f" ] || continue
    echo "---- $f (last 40 lines)" >&2
    tail -n 40 "$f" >&2
  done
}

hub_start() {
  local dir=$1 office=$2 u pw
  shift 2
  _hub_install_trap
  "$HUB_TOOL" init "$dir" --office "$office" >/dev/null || return 1
  dir=$(cd "$dir" && pwd)
  mkdir -p "$dir/.test-credentials"
  chmod 700 "$dir/.test-credentials"
  for u in "$office" "$@"; do
    pw=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    (umask 077; printf '%s\n' "$pw" >"$dir/.test-credentials/$u")
    VELD_HUB_PASSWORD=$pw "$HUB_TOOL" adduser "$dir" "$u" || return 1
  done
  _HUB_DIRS+=("$dir")
  HUB_URL=$("$HUB_TOOL" start "$dir") || { hub_dump_logs "$dir"; return 1; }
  HUB_DIR=$dir
  export HUB_URL HUB_DIR
  # Wait until it answers (tools/hub start already does; be sure).
  local k
  for ((k = 0; k < 50; k++)); do
    "$HUB_TOOL" status "$dir" >/dev/null 2>&1 && break
    sleep 0.1
  done
  "$HUB_TOOL" status "$dir" >/dev/null || { hub_dump_logs "$dir"; return 1; }
  # Watchdog: if this test dies without running its traps (SIGKILL by a
  # timeout), stop the hub anyway.  Own session, no inherited pipes.
  setsid bash -c 'while kill -0 "$0" 2>/dev/null; do sleep 1; done; "$1" stop "$2"' \
    "$$" "$HUB_TOOL" "$dir" </dev/null >/dev/null 2>&1 &
  echo $! >"$dir/.test-watchdog.pid"
}

hub_add_user() {
  local pw
  pw=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  (umask 077; printf '%s\n' "$pw" >"$HUB_DIR/.test-credentials/$1")
  VELD_HUB_PASSWORD=$pw "$HUB_TOOL" adduser "$HUB_DIR" "$1"
}

# The office's login is its device id (docs/hub.md), which exists only
# once org init has made the store: org init must not need the login yet.
hub_add_office() {
  local id
  id=$(VELD_HUB_USER='' VELD_HUB_PASSWORD='' "$VELD" -C "$1" --json device show 2>/dev/null \
    | grep -oE '"id":"[0-9a-f]{32}"' | cut -d'"' -f4)
  [ -n "$id" ] || return 1
  hub_add_user "$id" >&2 || return 1
  git -C "$HUB_DIR/veld.git" config veld.office "$id" || return 1
  echo "$id"
}

hub_stop() {
  local dir=$1 w
  "$HUB_TOOL" stop "$dir" || return 1
  if [ -f "$dir/.test-watchdog.pid" ]; then
    w=$(cat "$dir/.test-watchdog.pid")
    kill "$w" 2>/dev/null || true
    rm -f "$dir/.test-watchdog.pid"
  fi
  ! "$HUB_TOOL" status "$dir" >/dev/null 2>&1
}

# The helper reads the password from a file named in the environment, so
# it is neither in argv nor in git's config nor printed anywhere.
_HUB_CRED_HELPER='!f() { test "$1" = get || exit 0; cat >/dev/null; echo "username=$HUB_CRED_USER"; printf "password=%s\n" "$(cat "$HUB_CRED_FILE")"; }; f'

hub_git_pwfile() {
  local user=$1 file=$2
  shift 2
  HUB_CRED_USER=$user HUB_CRED_FILE=$file GIT_TERMINAL_PROMPT=0 GIT_ASKPASS='' SSH_ASKPASS='' \
    git -c credential.helper= -c "credential.helper=$_HUB_CRED_HELPER" "$@"
}

hub_git() {
  local user=$1
  shift
  hub_git_pwfile "$user" "$HUB_DIR/.test-credentials/$user" "$@"
}

hub_git_anon() {
  GIT_TERMINAL_PROMPT=0 GIT_ASKPASS='' SSH_ASKPASS='' git -c credential.helper= "$@"
}

_hub_hostport() {
  local hp=${HUB_URL#http://}
  echo "${hp%%/*}"
}

hub_port_open() {
  timeout 3 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$1" 2>/dev/null
}

hub_http() {
  local method=$1 path=$2 user=${3:-} file=${4:-} auth="" hp
  if [ -n "$user" ]; then
    [ -n "$file" ] || file="$HUB_DIR/.test-credentials/$user"
    auth="Authorization: Basic $(printf '%s:%s' "$user" "$(cat "$file")" | base64 -w0)"$'\r\n'
  fi
  hp=$(_hub_hostport)
  HUB_HTTP_AUTH=$auth timeout 10 bash -c '
    exec 3<>"/dev/tcp/${0%:*}/${0##*:}" || exit 1
    printf "%s %s HTTP/1.0\r\nHost: %s\r\n%sContent-Length: 0\r\nConnection: close\r\n\r\n" "$1" "$2" "$0" "$HUB_HTTP_AUTH" >&3
    IFS=" " read -r _ code _ <&3 || exit 1
    echo "$code"' "$hp" "$method" "$path"
}
