#!/usr/bin/env bash
# Runs on the H200 from the staged .gpuwork/ (tests/gpu/stage.sh): installs the wheel into that machine's torch with
# pip, builds libtorchtrt_runtime.so with its C++ executor against the C++ face of the stand-in (when the headers were
# staged), runs the GPU suite with both executors and the benchmarks. Logs go to $OUT (the device tool brings them
# back). SKIP_TESTS=1 runs the benchmarks only, SKIP_BENCH=1 the tests only; EXTRA_TESTS adds pytest arguments.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."   # .gpuwork
export PYTHONUNBUFFERED=1 W=$PWD OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
python3 -m pip install -q --no-deps --no-index trtpack-*-py3-none-linux_x86_64.whl 2>&1 | tail -2
export PYTHONPATH=$W/.pylib:$W TRTPACK_GPU_FIXTURES=$W/.gpufix TRTPACK_TENSORRT_STANDIN=1
if [ -d "$W/trtinc" ]; then
  export CUDA_HOME=$(dirname "$(dirname "$(which nvcc)")")
  (cd src && TRTPACK_STANDIN_TRT_HEADERS=$W/trtinc TRTPACK_EXTRA_INCLUDE=$W/.xinc \
     bash tests/gpu/build_native.sh /tmp/native > "$OUT/build.log" 2>&1) || { tail -20 "$OUT/build.log"; exit 1; }
  export TRTPACK_RUNTIME_LIBRARY=/tmp/native/libtorchtrt_runtime.so
fi
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  timeout 330 python3 -m pytest -q -rA -p no:cacheprovider tests/gpu/test_gpu.py tests/runtime/test_standin.py \
    ${EXTRA_TESTS:-} > "$OUT/tests.log" 2>&1
  grep "^SKIPPED\|^FAILED\|^ERROR" "$OUT/tests.log"; tail -1 "$OUT/tests.log"
  for e in cpp python; do
    echo "$e executor: $(grep -c "^PASSED.*\[$e[]-]" "$OUT/tests.log") passed, $(grep -c "^FAILED.*\[$e[]-]" "$OUT/tests.log") failed"
  done
fi
[ "${SKIP_BENCH:-0}" = 1 ] && exit 0
executors="python"; [ -n "${TRTPACK_RUNTIME_LIBRARY:-}" ] && executors="cpp python"
for e in $executors; do timeout 60 python3 -m bench.engine_call --executor "$e" 2>&1 | tee -a "$OUT/bench.log"; done
for e in $executors; do timeout 120 python3 -m bench.graphs --executor "$e" 2>&1 | tee -a "$OUT/bench.log"; done
