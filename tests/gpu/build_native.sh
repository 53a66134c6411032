#!/usr/bin/env bash
# Builds trtpack's two native pieces without Bazel, against the torch of `python3` (for the GPU machine, which has
# g++ and torch but no Bazel): libtrtpack_core.so (the core's C ABI; the wheel's own copy serves as well) and
# libtorchtrt_runtime.so for that torch (no TensorRT SDK: the Python executor serves CUDA). The GPU suite itself runs
# from the installed wheel and needs neither; this is for cases that want the C++ ops. Output: $1 (default
# build-native/), which TRTPACK_LIB_DIR then names. Extra headers (nlohmann/json, openssl, xxhash.h) may come from
# $TRTPACK_EXTRA_INCLUDE when the machine lacks them.
#
# With TRTPACK_STANDIN_TRT_HEADERS=DIR (the include/ folder of NVIDIA's public TensorRT headers), the library gets
# the C++ TensorRT executor (runtime/trt_executor.cpp) linked against the TensorRT C++ STAND-IN, a test double
# (tests/gpu/cpp_standin/, built here as libtrtpack_trt_standin.so beside it): a stand-in build, reporting
# tensorrt_rtx 1.7.1.116 on the GPU the stand-in emulates (TRTPACK_STANDIN_SM, default sm86). Needs CUDA's
# cuda_runtime_api.h ($CUDA_HOME/include, default /usr/local/cuda/include).
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-build-native}"
mkdir -p "$out"
py=python3
read -r torch_dir abi < <($py -c '
import os, torch
print(os.path.dirname(torch.__file__), int(torch.compiled_with_cxx11_abi()))')
version=$(sed -n 's/^TRTPACK_VERSION = "\(.*\)"/\1/p' version.bzl)
inc=(-I. -I"$torch_dir/include" -I"$torch_dir/include/torch/csrc/api/include")
[ -n "${TRTPACK_EXTRA_INCLUDE:-}" ] && inc+=(-I"$TRTPACK_EXTRA_INCLUDE")
flags=(-std=c++20 -O2 -fPIC -D_GLIBCXX_USE_CXX11_ABI="$abi" -DTRTPACK_VERSION="\"$version\"" -DXXH_INLINE_ALL -w)
crypto=$(ls /usr/lib/x86_64-linux-gnu/libcrypto.so* /lib/x86_64-linux-gnu/libcrypto.so* 2>/dev/null | head -1 || true)
[ -n "$crypto" ] || crypto=$($py -c 'import _ssl; print(_ssl.__file__)' | xargs ldd | awk '/libcrypto/ {print $3}')
core=(core/engine_record.cc core/upgraders.cc core/validate.cc core/dim_expr.cc core/plan_header.cc core/compatibility.cc)
runtime=(runtime/engine_cache.cpp runtime/kernels.cpp runtime/ops.cpp)
links=()
if [ -n "${TRTPACK_STANDIN_TRT_HEADERS:-}" ]; then
  cuda_inc="${CUDA_HOME:-/usr/local/cuda}/include"
  [ -f "$cuda_inc/cuda_runtime_api.h" ] || { echo "no cuda_runtime_api.h in $cuda_inc: set CUDA_HOME" >&2; exit 1; }
  $py tests/gpu/cpp_standin/gen_stubs.py "$TRTPACK_STANDIN_TRT_HEADERS" "$out/standin_stubs.h"
  g++ -std=c++17 -O2 -fPIC -shared -w -I"$out" -I"$TRTPACK_STANDIN_TRT_HEADERS" -I"$cuda_inc" \
    tests/gpu/cpp_standin/trt_standin.cpp -ldl -Wl,-soname,libtrtpack_trt_standin.so -o "$out/libtrtpack_trt_standin.so"
  runtime+=(runtime/engine_io.cpp runtime/trt_executor.cpp)
  inc+=(-I"$TRTPACK_STANDIN_TRT_HEADERS" -I"$cuda_inc")
  flags+=(-DTRTPACK_TENSORRT_STANDIN -DTRTPACK_TRT_BACKEND='"tensorrt_rtx"' -DTRTPACK_TRT_VERSION='"1.7.1.116"')
  links=(-L"$out" -ltrtpack_trt_standin -Wl,-rpath,"$(cd "$out" && pwd)")
fi
# one object per source, in parallel
printf '%s\n' "${core[@]}" core/c_api.cc "${runtime[@]}" |
  xargs -P "$(nproc)" -I{} sh -c 'g++ "$@" -c {} -o "'"$out"'/$(echo {} | tr / _).o"' _ "${flags[@]}" "${inc[@]}"
objs() { for s in "$@"; do echo "$out/$(echo "$s" | tr / _).o"; done; }
g++ -shared $(objs "${core[@]}" core/c_api.cc) "$crypto" -Wl,--version-script=core/c_api.lds -o "$out/libtrtpack_core.so"
g++ -shared $(objs "${core[@]}" "${runtime[@]}") "$crypto" -L"$torch_dir/lib" -ltorch -ltorch_cpu -lc10 \
  "${links[@]}" -Wl,-rpath,"$torch_dir/lib" -o "$out/libtorchtrt_runtime.so"
rm -f "$out"/*.o
echo "built $out/libtrtpack_core.so and $out/libtorchtrt_runtime.so (torch $($py -c 'import torch; print(torch.__version__)'), cxx11 abi $abi)"
