#!/bin/sh
# Builds bench/c/lowp_time.c (setup.py's flags) and runs it on one core, nice'd.
# Usage: bench/c/lowp_time.sh [m ...]
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${TMPDIR:-/tmp}/fastrnn-lowp-time.$$
trap 'rm -f "$out"' EXIT INT TERM
${CC:-gcc} -O3 -std=c11 -fno-math-errno -fno-trapping-math -Wall -Wno-unused-function \
    -Wno-unknown-pragmas -I"$root/csrc" "$root/bench/c/lowp_time.c" "$root/csrc/lowp.c" \
    "$root/csrc/lowp_bf16.c" "$root/csrc/lowp_int8.c" "$root/csrc/packed.c" "$root/csrc/avx512.c" "$root/csrc/avx2.c" "$root/csrc/cpu.c" \
    -o "$out" -lm
nice "$out" "$@"
