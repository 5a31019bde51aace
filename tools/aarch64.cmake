# tools/aarch64.cmake — CMake toolchain file: veld for arm64 (the tablets),
# cross-built on a Debian 12 amd64 machine with Debian's cross compiler
# (crossbuild-essential-arm64) against the arm64 multiarch -dev packages,
# and every test run by ctest under qemu-user.  `tools/setup arm64` installs
# all of it; `tools/check --arm64` configures a build with
#   cmake -DCMAKE_TOOLCHAIN_FILE=tools/aarch64.cmake ...
#
# No sysroot: Debian's cross gcc searches /usr/include, its multiarch
# folders and /usr/lib/aarch64-linux-gnu itself, and qemu-aarch64 finds the
# arm64 dynamic loader where libc6:arm64 installs it (/lib), so no -L prefix.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)

# pkg-config reads the arm64 .pc files only, never the host's.  CMake reads
# this file again for each try_compile, in the same process: the environment
# is set once, from the real build tree.
get_property(veld_in_try_compile GLOBAL PROPERTY IN_TRY_COMPILE)
if(veld_in_try_compile)
  return()
endif()
set(VELD_ARM64_PC "${CMAKE_BINARY_DIR}/aarch64-pkgconfig")
set(ENV{PKG_CONFIG_LIBDIR} "${VELD_ARM64_PC}:/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# libgit2-dev:arm64 cannot be installed beside the host's libgit2-dev: it
# depends on libhttp-parser-dev, which Debian 12 does not make Multi-Arch
# "same".  Its headers are the host's, byte for byte (one version on both
# architectures, as Multi-Arch requires of libgit2-1.5), so only the link
# is missing: a libgit2.pc here that links the arm64 runtime library
# (libgit2-1.5:arm64) through a libgit2.so of its own.
set(VELD_ARM64_GIT2 /usr/lib/aarch64-linux-gnu/libgit2.so.1.5)
if(NOT EXISTS "${VELD_ARM64_PC}/libgit2.pc" AND EXISTS "${VELD_ARM64_GIT2}")
  file(MAKE_DIRECTORY "${VELD_ARM64_PC}/lib")
  file(CREATE_LINK "${VELD_ARM64_GIT2}" "${VELD_ARM64_PC}/lib/libgit2.so" SYMBOLIC)
  file(WRITE "${VELD_ARM64_PC}/libgit2.pc"
       "Name: libgit2\nDescription: libgit2 for arm64 (tools/aarch64.cmake)\nVersion: 1.5.1\n"
       "Libs: -L${VELD_ARM64_PC}/lib -lgit2\nCflags:\n")
endif()

# Under qemu the tests run some ten to twenty times slower than natively:
# their wall-clock limits scale by this, and each has longer to finish
# (tests/CMakeLists.txt).
set(VELD_TEST_TIME_SCALE 20 CACHE STRING "Slowdown of the unit tests' runs (qemu, valgrind)")
set(VELD_TEST_TIMEOUT 3600 CACHE STRING "Time limit of each unit test, in seconds")
