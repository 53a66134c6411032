#!/usr/bin/env bash
# Builds trtpack's two native pieces without Bazel, against the torch of `python3` (for the GPU machine, which has
# g++ and torch but no Bazel): libtrtpack_core.so (the core's C ABI; the wheel's own copy serves as well) and
# libtorchtrt_runtime.so for that torch (no TensorRT SDK: the Python executor serves CUDA). The GPU suite itself runs
# from the installed wheel and needs neither; this is for cases that want the C++ ops. Output: $1 (default
# build-native/), which TRTPACK_LIB_DIR then names. Extra headers (nlohmann/json, openssl, xxhash.h) may come from
# $TRTPACK_EXTRA_INCLUDE when the machine lacks them.
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
# one object per source, in parallel
printf '%s\n' "${core[@]}" core/c_api.cc "${runtime[@]}" |
  xargs -P "$(nproc)" -I{} sh -c 'g++ "$@" -c {} -o "'"$out"'/$(echo {} | tr / _).o"' _ "${flags[@]}" "${inc[@]}"
objs() { for s in "$@"; do echo "$out/$(echo "$s" | tr / _).o"; done; }
g++ -shared $(objs "${core[@]}" core/c_api.cc) "$crypto" -Wl,--version-script=core/c_api.lds -o "$out/libtrtpack_core.so"
g++ -shared $(objs "${core[@]}" "${runtime[@]}") "$crypto" -L"$torch_dir/lib" -ltorch -ltorch_cpu -lc10 \
  -Wl,-rpath,"$torch_dir/lib" -o "$out/libtorchtrt_runtime.so"
rm -f "$out"/*.o
echo "built $out/libtrtpack_core.so and $out/libtorchtrt_runtime.so (torch $($py -c 'import torch; print(torch.__version__)'), cxx11 abi $abi)"
