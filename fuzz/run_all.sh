#!/usr/bin/env bash
# Runs every fuzz target for a bounded time and prints executions / crashes / hangs per target.
#   fuzz/run_all.sh [SECONDS_PER_TARGET=60]
# Python targets use atheris (requirements.txt) over the trtpack package (run `./bazelw build //...` first).
# The C++ target is core/engine_record_fuzz.cc built with clang's libFuzzer + ASan/UBSan (apt-get install clang
# libclang-rt-14-dev). It is compiled here, not through Bazel, so the Bazel C++ toolchain (g++) stays untouched.
# Findings land in $FUZZ_OUT (default /tmp/trtpack-fuzz) as crash-*/timeout-*/oom-*; the corpora grow there too.
set -u
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-60}"
OUT="${FUZZ_OUT:-/tmp/trtpack-fuzz}"
PYTHON="${PYTHON:-${TRTPACK_VENV:-.venv}/bin/python}"
mkdir -p "$OUT/tmp"
export TMPDIR="$OUT/tmp"  # the harnesses' scratch files
status=0

report() {  # target log
  local runs findings
  runs=$(grep -oE "Done [0-9]+ runs" "$2" | grep -oE "[0-9]+" || echo 0)
  findings=$(ls "$OUT/$1"/crash-* "$OUT/$1"/oom-* 2>/dev/null | wc -l)
  hangs=$(ls "$OUT/$1"/timeout-* 2>/dev/null | wc -l)
  printf "%-14s executions=%-9s crashes=%-3s hangs=%s\n" "$1" "${runs:-0}" "$findings" "$hangs"
  [ "$findings" = 0 ] && [ "$hangs" = 0 ] && [ "${runs:-0}" != 0 ] || status=1
}

for target in meta plan_header engine archive zip expr; do
  mkdir -p "$OUT/$target/corpus"
  cp -n fuzz/corpus/$target/* "$OUT/$target/corpus/"
  PYTHONPATH="py:." "$PYTHON" fuzz/fuzz_$target.py "$OUT/$target/corpus" -max_total_time="$SECONDS_PER_TARGET" \
    -timeout=5 -rss_limit_mb=4096 -artifact_prefix="$OUT/$target/" > "$OUT/$target.log" 2>&1
  report "$target" "$OUT/$target.log"
done

CLANG="${CLANG:-clang++}"
if command -v "$CLANG" > /dev/null; then
  target=core_cpp
  mkdir -p "$OUT/$target/corpus"
  cp -n fuzz/corpus/meta/* fuzz/corpus/plan_header/* "$OUT/$target/corpus/"
  if "$CLANG" -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I. \
       -DTRTPACK_VERSION="\"fuzz\"" core/engine_record_fuzz.cc core/engine_record.cc core/upgraders.cc \
       core/validate.cc core/dim_expr.cc core/plan_header.cc core/compatibility.cc -lcrypto \
       -o "$OUT/engine_record_fuzz" > "$OUT/$target.build.log" 2>&1; then
    "$OUT/engine_record_fuzz" "$OUT/$target/corpus" -max_total_time="$SECONDS_PER_TARGET" -timeout=5 \
      -rss_limit_mb=2048 -artifact_prefix="$OUT/$target/" > "$OUT/$target.log" 2>&1
    report "$target" "$OUT/$target.log"
  else
    echo "core_cpp       build failed: see $OUT/$target.build.log"; status=1
  fi
else
  echo "core_cpp       skipped: no clang++ (apt-get install clang libclang-rt-14-dev)"
fi
exit $status
