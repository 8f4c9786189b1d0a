#!/usr/bin/env bash
# Builds the plain-C driver of the kernels (tests/c/driver.c) against the
# system BLAS, installing the reference BLAS (libblas-dev) with apt-get when
# none links.
#
#   tests/c/build.sh [plain|asan] [output]
#
# plain: the flags of setup.py with -g, for valgrind; asan: AddressSanitizer
# and UndefinedBehaviorSanitizer, every report fatal.  Output by default
# tests/c/build/driver-MODE.
set -euo pipefail

# The kernels' translation units and include path, from the repository root.
CSRC="csrc/cpu.c csrc/plan.c csrc/packed.c csrc/avx512.c csrc/avx2.c csrc/kernels_f32.c csrc/kernels_f64.c csrc/lowp.c
      csrc/lowp_bf16.c csrc/lowp_int8.c csrc/frozen.c"
CSRC_INCLUDE="-Icsrc"

cd "$(dirname "$0")/../.."
mode=${1:-plain}
out=${2:-tests/c/build/driver-$mode}
cc=${CC:-cc}

links_blas() {
    printf 'void dgemm_(void);\nint main(void) { dgemm_(); return 0; }\n' |
        "$cc" -x c - -o /dev/null -lblas 2>/dev/null
}

if ! links_blas; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "build.sh: no system BLAS links; installing libblas-dev" >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -q libblas-dev >&2 ||
        { $sudo apt-get update -q >&2 && $sudo apt-get install -y -q libblas-dev >&2; }
    links_blas || { echo "build.sh: still no BLAS to link (-lblas)" >&2; exit 1; }
fi

# The flags of setup.py, and -g for the reports' line numbers.
cflags="-std=c11 -fopenmp -fno-math-errno -fno-trapping-math -Wall -Wno-unused-function
        -Wno-unknown-pragmas -g"
case "$mode" in
plain) cflags="$cflags -O3" ;;
asan) cflags="$cflags -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" ;;
*) echo "build.sh: mode is plain or asan, not '$mode'" >&2; exit 2 ;;
esac

mkdir -p "$(dirname "$out")"
# shellcheck disable=SC2086  # the flag and source lists split on purpose
"$cc" $cflags $CSRC_INCLUDE -Itests/c tests/c/driver.c $CSRC -o "$out" -lblas -lm
echo "$out"
