#!/usr/bin/env bash
# Builds libtorchtrt_runtime.so (the trtpack:: ops in C++: what AOTInductor packages and C++ programs need) against a
# torch other than the project venv's, and puts it where `import trtpack` looks for one built for that torch:
#   $TRTPACK_CACHE_DIR (default ~/.cache/trtpack)/runtime/torch-X.Y.Z/libtorchtrt_runtime.so
#
#   tools/build_runtime.sh --torch DIR [--out FILE]
#     DIR   a torch package folder (python -c 'import torch, os; print(os.path.dirname(torch.__file__))') or an
#           unpacked libtorch; both hold include/ and lib/
#     FILE  where to copy the library instead (then point TRTPACK_RUNTIME_LIBRARY at it)
# The build uses its own Bazel output base per torch folder, so the checkout's own bazel-bin is left as it is.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
torch_dir="" out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --torch) torch_dir="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "usage: $0 --torch DIR [--out FILE]" >&2; exit 2 ;;
  esac
done
[ -n "$torch_dir" ] || { echo "usage: $0 --torch DIR [--out FILE]" >&2; exit 2; }
torch_dir="$(cd "$torch_dir" && pwd)"
for need in include/torch lib/libtorch_cpu.so; do
  [ -e "$torch_dir/$need" ] || { echo "build_runtime: $torch_dir has no $need: give a torch package folder or an unpacked libtorch" >&2; exit 2; }
done
cache="${TRTPACK_CACHE_DIR:-$HOME/.cache/trtpack}"
base="$cache/bazel/torch-$(echo "$torch_dir" | sha256sum | cut -c1-12)"
bazel=("$ROOT/bazelw" --output_base="$base")
opts=(--repo_env=TRTPACK_TORCH_DIR="$torch_dir" --symlink_prefix=/)
trap '"${bazel[@]}" shutdown >/dev/null 2>&1 || true' EXIT
"${bazel[@]}" build "${opts[@]}" //runtime:libtorchtrt_runtime.so
lib="$("${bazel[@]}" info "${opts[@]}" bazel-bin 2>/dev/null)/runtime/libtorchtrt_runtime.so"
version="$(grep -a -o 'trtpack-runtime-build-info: torch [0-9.]*' "$lib" | head -1 | awk '{print $3}')"
[ -n "$version" ] || { echo "build_runtime: $lib records no torch version" >&2; exit 1; }
[ -n "$out" ] || out="$cache/runtime/torch-$version/libtorchtrt_runtime.so"
mkdir -p "$(dirname "$out")"
cp "$lib" "$out.tmp.$$" && chmod u+w "$out.tmp.$$" && mv -f "$out.tmp.$$" "$out"
echo "build_runtime: built for torch $version: $out"
