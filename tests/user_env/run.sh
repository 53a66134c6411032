#!/usr/bin/env bash
# trtpack in users' environments (CI runs this after the main suite): installs the built wheel with plain pip into a
# fresh venv per (CPython, torch) pair of the supported range, and runs test_user_env.py there from a scratch folder
# outside the checkout. Registries only; the pip cap of these machines (torch <= 2.14.1) is lifted for these venvs.
#
#   tests/user_env/run.sh JUNIT_DIR          (after ./bazelw build //py:wheel)
#   USER_ENV_PAIRS="3.12:2.15:full 3.10:2.11:load 3.13:2.14:load"  (default)  PYTHON:TORCH:SCOPE
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
junit="${1:?usage: run.sh JUNIT_DIR}"
mkdir -p "$junit"
pairs="${USER_ENV_PAIRS:-3.12:2.15:full 3.10:2.11:load 3.13:2.14:load}"
wheel="$(ls "$ROOT"/bazel-bin/py/trtpack-*-py3-none-*.whl 2>/dev/null | head -1)"
[ -n "$wheel" ] || { echo "user_env: no wheel; run ./bazelw build //py:wheel first" >&2; exit 1; }
work="$(mktemp -d /tmp/trtpack-user-env.XXXXXX)"
trap 'rm -rf "$work"' EXIT
say() { echo "user_env: $*" >&2; }

find_python() {  # python3.X from pyenv's versions, else on PATH
  local v="$1" p
  for p in "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/"$v".*/bin/python"$v" "$(command -v "python$v")"; do
    [ -x "$p" ] && { echo "$p"; return 0; }
  done
  return 1
}

start=$SECONDS
say "artifacts from the project's venv ($("$ROOT/.venv/bin/python3" -c 'import torch; print(torch.__version__)'))"
PYTHONPATH="$ROOT/py" TRTPACK_CACHE_DIR="$work/cache-main" "$ROOT/.venv/bin/python3" \
  "$ROOT/tests/user_env/make_main_artifacts.py" "$work/main" || exit 1
status=0
for pair in $pairs; do
  IFS=: read -r pyver torchver scope <<< "$pair"
  t0=$SECONDS
  python="$(find_python "$pyver")" || { say "no CPython $pyver here (pyenv or python$pyver on PATH)"; status=1; continue; }
  venv="$work/venv-$pyver" tests="$work/tests-$pyver"
  extra=""; [ "$scope" = full ] && extra="[rtx]"
  "$python" -m venv "$venv" && PIP_CONFIG_FILE=/dev/null "$venv/bin/python" -m pip install -q \
    --disable-pip-version-check "$wheel$extra" "torch==$torchver.*" pytest || { say "pip install failed"; status=1; continue; }
  torch_dir="$("$venv/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
  runtime="$work/runtime-$pyver/libtorchtrt_runtime.so"
  if [ "$scope" = full ]; then  # a libtorchtrt_runtime.so for this torch, as a user builds one
    TRTPACK_CACHE_DIR="$work/cache-build" "$ROOT/tools/build_runtime.sh" --torch "$torch_dir" --out "$runtime" \
      || { say "build_runtime.sh failed"; status=1; }
  fi
  mkdir -p "$tests" && cp "$ROOT/tests/user_env/test_user_env.py" "$ROOT/tests/user_env/user_model.py" "$tests/"
  select=(); [ "$scope" = full ] || select=(-m "not full")
  (cd "$tests" && env -u PYTHONPATH -u TRTPACK_LIB_DIR TRTPACK_CACHE_DIR="$work/cache-$pyver" \
     USER_ENV_WORK="$tests" USER_ENV_MAIN="$work/main" USER_ENV_RUNTIME="$runtime" \
     USER_ENV_OTHER_PYTHON="$ROOT/.venv/bin/python3" USER_ENV_OTHER_PYTHONPATH="$ROOT/py" \
     "$venv/bin/python" -m pytest -q -rs -p no:cacheprovider "${select[@]}" -o markers=full test_user_env.py \
       --junitxml="$junit/user_env-py$pyver-torch$torchver.xml" -o junit_suite_name="user_env py$pyver torch$torchver") \
    || status=1
  say "CPython $pyver + torch $torchver ($scope): $((SECONDS - t0)) s"
  rm -rf "$venv"
done
say "all pairs: $((SECONDS - start)) s"
exit $status
