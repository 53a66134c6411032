#!/usr/bin/env bash
# Stages what the H200 needs (tests/README.md, "The GPU suite") into the git-ignored .gpuwork/ of this checkout, which
# the device tool sends with carry=[".gpuwork"]: the wheel (nothing of py/ itself), the test and bench code, the
# fixtures (compiled here with TensorRT-RTX; REMAKE_FIXTURES=1 to rebuild them), pure-Python test packages, and for the
# C++ executor the runtime's sources, NVIDIA's public TensorRT headers (.trtheaders/include, git-ignored, never
# committed) and the headers that machine lacks. Then on the device: `bash .gpuwork/tests/gpu/run_on_device.sh`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
W=.gpuwork
./bazelw build //py:wheel
if [ ! -d "$W/.gpufix" ] || [ "${REMAKE_FIXTURES:-0}" = 1 ]; then
  rm -rf "$W/.gpufix"
  TRTPACK_TENSORRT_STANDIN=1 PYTHONPATH=py .venv/bin/python -m tests.gpu.make_fixtures "$W/.gpufix"
fi
rm -rf "$W/tests" "$W/bench" "$W/src" "$W"/trtpack-*.whl
mkdir -p "$W/.pylib" "$W/src/tests/gpu"
cp -r tests bench "$W/" && rm -rf "$W/tests/zoo"
find "$W/tests" "$W/bench" -name 'BUILD*' -delete
cp bazel-bin/py/trtpack-*-py3-none-linux_x86_64.whl "$W/"
cp -r core runtime version.bzl "$W/src/" && cp -r tests/gpu/build_native.sh tests/gpu/cpp_standin "$W/src/tests/gpu/"
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
for d in _pytest pytest pluggy iniconfig py.py packaging absl; do [ -e "$W/.pylib/$d" ] || cp -r "$site/$d" "$W/.pylib/"; done
if [ -d .trtheaders/include ]; then rm -rf "$W/trtinc" && cp -r .trtheaders/include "$W/trtinc"; fi
if [ ! -d "$W/.xinc" ]; then
  mkdir -p "$W/.xinc/openssl"
  cp -r /usr/include/nlohmann "$W/.xinc/" && cp /usr/include/xxhash.h "$W/.xinc/"
  cp -r /usr/include/openssl/* /usr/include/x86_64-linux-gnu/openssl/* "$W/.xinc/openssl/"
fi
du -sh "$W"
