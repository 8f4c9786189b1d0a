#!/bin/sh
# Builds tests/c/lowp_check.c with csrc/lowp*.c (the flags of setup.py: -O3
# -std=c11, no -march) and runs it; exits non-zero on any mismatch.
# Usage: tests/c/lowp_check.sh [extra cflags, e.g. -fsanitize=address,undefined -g]
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${TMPDIR:-/tmp}/fastrnn-lowp-check.$$
trap 'rm -f "$out"' EXIT INT TERM
${CC:-gcc} -O3 -std=c11 -fno-math-errno -fno-trapping-math -Wall -Wextra -Werror \
    -Wno-unused-function -Wno-unknown-pragmas "$@" -I"$root/csrc" \
    "$root/tests/c/lowp_check.c" "$root/csrc/lowp.c" "$root/csrc/lowp_bf16.c" \
    "$root/csrc/lowp_int8.c" -o "$out" -lm
"$out"
