#!/bin/sh
# Builds tests/c/lowp_check.c with csrc/lowp*.c and runs it, twice: with the
# flags of setup.py (-O3 -std=c11, no -march) and with -std=gnu11
# -march=native, where gcc would fuse multiplies and adds if the files let
# it.  Exits non-zero on any mismatch.  Extra arguments go to both builds,
# e.g. tests/c/lowp_check.sh -O1 -g -fsanitize=address,undefined
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${TMPDIR:-/tmp}/fastrnn-lowp-check.$$
trap 'rm -f "$out"' EXIT INT TERM
for mode in "-std=c11" "-std=gnu11 -march=native"; do
    echo "lowp_check.sh: $mode $*"
    # shellcheck disable=SC2086
    ${CC:-gcc} -O3 $mode -fno-math-errno -fno-trapping-math -Wall -Wextra -Werror \
        -Wno-unused-function -Wno-unknown-pragmas "$@" -I"$root/csrc" \
        "$root/tests/c/lowp_check.c" "$root/csrc/lowp.c" "$root/csrc/lowp_bf16.c" \
        "$root/csrc/lowp_int8.c" -o "$out" -lm
    "$out"
done
