#!/usr/bin/env bash
# tests/install/run.sh — install the build into a temporary prefix and build
# apps against it the way README.md says, through pkg-config:
#   roundtrip.c shared  (pkg-config --cflags --libs veld, run with LD_LIBRARY_PATH)
#   roundtrip.c static  (pkg-config --static --cflags --libs veld, libveld.a)
#   own_os.c    shared  (its own OS table from the exported platform functions)
# It fails if veld.pc names another prefix, if the static link lacks a
# library, or if a function veld_platform.h points apps to is not exported.
#
# Environment (tests/CMakeLists.txt): VELD_BUILD the build tree, CMAKE, CC,
# PKG_CONFIG, VELD_APP_FLAGS the sanitizer flags the library was built with
# (an instrumented library needs an instrumented app), VELD_TEST_TMP, and
# for a cross build VELD_RUN, the emulator that runs what CC builds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${CMAKE:=cmake}" "${CC:=cc}" "${PKG_CONFIG:=pkg-config}" "${VELD_APP_FLAGS:=}" "${VELD_RUN:=}"
mkdir -p "${VELD_TEST_TMP:-/tmp}"
tmp=$(mktemp -d "${VELD_TEST_TMP:-/tmp}/install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "install: $*" >&2; exit 1; }

prefix=$tmp/prefix
unset DESTDIR
"$CMAKE" --install "$VELD_BUILD" --prefix "$prefix" >"$tmp/install.log" ||
	{ cat "$tmp/install.log" >&2; fail "cmake --install failed"; }
pc=$(find "$prefix" -name veld.pc -path '*/pkgconfig/*')
[ -n "$pc" ] || fail "no veld.pc under $prefix"
PKG_CONFIG_PATH=$(dirname "$pc")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export PKG_CONFIG_PATH

got=$("$PKG_CONFIG" --variable=prefix veld)
[ "$got" = "$prefix" ] || fail "veld.pc has prefix=$got, installed to $prefix"
libdir=$("$PKG_CONFIG" --variable=libdir veld)
for lib in libveld.so libveld.a; do
	[ -f "$libdir/$lib" ] || fail "no $lib in libdir=$libdir"
done
[ -f "$("$PKG_CONFIG" --variable=includedir veld)/veld_platform.h" ] || fail "veld_platform.h not installed"

cflags="-std=c11 -pedantic -Wall -Wextra -Werror $VELD_APP_FLAGS $("$PKG_CONFIG" --cflags veld)"
# shellcheck disable=SC2086 # word splitting of the flags is meant
build() { # OUT SRC LIBS...
	local out=$1 src=$2
	shift 2
	"$CC" $cflags -o "$tmp/$out" "$here/$src" "$@" $VELD_APP_FLAGS || fail "cannot build $out"
}
# Outputs are read whole and matched in bash: `cmd | grep -q` under pipefail
# fails when grep stops reading early and cmd gets SIGPIPE.
needs_veld() { [[ $(readelf -d "$tmp/$1") == *"Shared library: [libveld.so."* ]]; }
# run PROGRAM ARGS...: natively, or under the emulator of a cross build.
# shellcheck disable=SC2086 # VELD_RUN is a command line, or nothing
run() { $VELD_RUN "$@"; }
# What a program loads, as ldd lists it; ldd cannot read a cross build's
# programs, so their own dynamic loader lists them, under the emulator.
loads() { # PROGRAM
	[ -n "$VELD_RUN" ] || { ldd "$1"; return; }
	local interp
	interp=$(readelf -l "$1" | sed -n 's/.*program interpreter: \(.*\)]$/\1/p')
	run "$interp" --list "$1"
}

# Shared: the installed libveld.so, found through LD_LIBRARY_PATH.
# shellcheck disable=SC2046
build roundtrip_shared roundtrip.c $("$PKG_CONFIG" --libs veld)
needs_veld roundtrip_shared || fail "roundtrip_shared does not use libveld.so"
loaded=$(LD_LIBRARY_PATH=$libdir loads "$tmp/roundtrip_shared")
[[ $loaded == *"libveld.so.0 => $libdir/libveld.so.0 "* ]] ||
	fail "roundtrip_shared does not load $libdir/libveld.so: $loaded"
LD_LIBRARY_PATH=$libdir run "$tmp/roundtrip_shared" "$tmp/store-shared"

# Static: libveld.a and everything it needs, from --static alone.  The
# linker prefers libveld.so for -lveld, so the archive is named.  The list
# goes down to what a fully static libcurl needs (nghttp2, rtmp, ldap, ...),
# libraries Debian links only with their -dev packages, which the shared
# libcurl this links does not need: a -l the linker cannot find is left out
# and shown.  Every library libveld.a calls itself is found (building veld
# needs them), so one missing from veld.pc still fails the link.
findable() { # NAME: libNAME.so or libNAME.a on the compiler's library path
	local f
	for f in "lib$1.so" "lib$1.a"; do
		[ "$("$CC" -print-file-name="$f")" != "$f" ] && return 0
	done
	return 1
}
static_libs=" " left_out=""
for flag in $("$PKG_CONFIG" --static --libs veld); do
	case $flag in
	-lveld) flag=-l:libveld.a ;;
	-l*) findable "${flag#-l}" || { left_out="$left_out $flag"; continue; } ;;
	esac
	static_libs="$static_libs$flag "
done
case $static_libs in *" -l:libveld.a "*) ;; *) fail "no -lveld in pkg-config --static --libs veld" ;; esac
[ -z "$left_out" ] || echo "install: static link: not on this system, left out:$left_out"
# shellcheck disable=SC2086
build roundtrip_static roundtrip.c $static_libs
! needs_veld roundtrip_static || fail "roundtrip_static still needs libveld.so"
run "$tmp/roundtrip_static" "$tmp/store-static"

# Its own OS table, through the shared library's exported functions.
# shellcheck disable=SC2046
build own_os own_os.c $("$PKG_CONFIG" --libs veld)
needs_veld own_os || fail "own_os does not use libveld.so"
LD_LIBRARY_PATH=$libdir run "$tmp/own_os" "$tmp/store-os"
echo "install: ok ($prefix)"
