"""What the CLI's export, run and extract commands do (the CLI itself only parses arguments)."""
import json
import os
import subprocess
import sys
import time

import torch

import trtpack
from trtpack import artifacts, machine
from trtpack.artifacts import engine as engine_file
from trtpack.artifacts.program import engines, program_to_save
from trtpack.cli import roundtrip
from trtpack.cli.model_file import load_model_file

SUFFIX = {"ep": ".ep", "pt2": ".pt2", "engine": ".engine"}


def export(model_path: str, *, out=None, formats=("ep", "pt2", "engine"), fallback=True, targets=None,
           min_block_size=None, verify=True, cache=True) -> str:
    """Compiles, writes each format, checks each artifact in a fresh process. Returns "ok" when every check that
    could run here matched eager, "failed" when an artifact did not load, else "mismatch"."""
    unknown = [f for f in formats if f not in SUFFIX]
    if unknown:
        raise trtpack.TrtpackError(f"trtpack: unknown format(s) {unknown}; choose from {list(SUFFIX)}")
    spec = load_model_file(model_path)
    out = out or os.path.join(os.environ.get("BUILD_WORKING_DIRECTORY", ""), "out", spec.name)
    os.makedirs(out, exist_ok=True)
    options = {"fallback": fallback, "verify": verify, "cache": cache, **spec.compile_options}
    if targets:
        options["targets"] = targets
    if min_block_size is not None:
        options["min_block_size"] = min_block_size

    print(f"trtpack export {_shown(model_path)} -> {_shown(out)}/")
    start = time.perf_counter()
    compiled = trtpack.compile(spec.module, spec.arg_inputs, kwarg_inputs=spec.kwarg_inputs or None,
                               dynamic_shapes=spec.dynamic_shapes, **options)
    compile_s = time.perf_counter() - start
    with torch.no_grad():
        eager = spec.module(*spec.arg_inputs, **spec.kwarg_inputs)
    case = os.path.join(out, f"{spec.name}.check.safetensors")
    roundtrip.write_case(case, spec.arg_inputs, spec.kwarg_inputs, eager)

    rows = []
    for fmt in formats:
        rows += _write(compiled, spec.name, out, fmt)
    for row in rows:
        if row.get("region"):  # one engine of several: its inputs are not the model's
            row["check"] = {"ok": True, "ran": "region", "reason": "", "max_abs_diff": None}
            artifacts.load(row["path"])  # the plan and its sidecar validate
        elif row.get("path"):
            row["check"] = _check_fresh_process(row["path"], case)
    _print_summary(compiled, compile_s, rows)
    failed = [r["check"]["ran"] for r in rows if r.get("check") and not r["check"]["ok"]
              and r["check"]["ran"] not in ("nothing", "not loadable here")]
    return "failed" if "failed to load" in failed else "mismatch" if failed else "ok"


def _write(compiled, name: str, out: str, fmt: str) -> list:
    path = os.path.join(out, name + SUFFIX[fmt])
    start = time.perf_counter()
    if fmt == "engine":
        found = engines(program_to_save(compiled))
        if len(found) == 0:
            return [{"format": fmt, "path": None, "note": "no engine: nothing in this model was converted"}]
        rows = []
        for engine in found:
            one = path if len(found) == 1 else os.path.join(out, f"{name}.{engine.name}.engine")
            engine_file.write(engine, one)
            rows.append({"format": fmt, "path": one, "size": os.path.getsize(one),
                         "seconds": time.perf_counter() - start, "region": len(found) > 1})
        return rows
    try:
        artifacts.save(compiled, path)
    except trtpack.TrtpackError as e:
        return [{"format": fmt, "path": None, "note": str(e).splitlines()[0]}]
    return [{"format": fmt, "path": path, "size": os.path.getsize(path), "seconds": time.perf_counter() - start}]


def _shown(path: str) -> str:
    """`path` relative to where the user ran the command, when it lies below it."""
    here = os.environ.get("BUILD_WORKING_DIRECTORY") or os.getcwd()
    relative = os.path.relpath(os.path.abspath(path), here)
    return path if relative.startswith("..") else relative


def _check_fresh_process(path: str, case: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "trtpack.cli.roundtrip", path, case], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"ok": False, "ran": "failed to load", "reason": tail, "max_abs_diff": None}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _print_summary(compiled, compile_s: float, rows: list) -> None:
    summary = compiled.meta.get("trtpack_summary", {})
    seconds = summary.get("seconds", {})
    split = ", ".join(f"{k} {seconds[k]:.1f} s" for k in ("export", "onnx", "verify", "build", "lower") if k in seconds)
    print(f"\ncompiled in {compile_s:.1f} s ({split})")
    found = engines(program_to_save(compiled))
    print(f"engines: {len(found)}; ops in TensorRT: {summary.get('ops_in_engines', '?')}, "
          f"left in PyTorch: {summary.get('ops_in_pytorch', '?')}")
    for engine in found:
        rec = engine.record
        print(f"  {engine.name:<16} plan {rec['plan_size']:>11,} B  targets {','.join(rec['targets'])}  "
              f"{rec['backend']} {rec['backend_version']}")
    left = {}
    for item in summary.get("left_in_pytorch", []):
        left.setdefault((item["op"], item["reason"]), 0)
        left[(item["op"], item["reason"])] += item.get("count", 1)
    for (op, reason), count in sorted(left.items()):
        print(f"  in PyTorch: {op} x{count}: {reason}")
    here = machine.describe(None)
    for engine in found[:1]:
        verdict = trtpack.record.compatibility(engine.record, here)
        print(f"on this machine: {'TensorRT can run it' if verdict['usable'] else verdict['reason']}")
    print("\nartifacts (each loaded back in a fresh process and compared with eager):")
    for row in rows:
        if not row.get("path"):
            print(f"  {row['format']:<7} not written: {row['note']}")
            continue
        check = row["check"]
        if check["ran"] == "region":
            result = "one region of the model: record and plan validated (runs inside the .ep)"
        elif check["ran"] == "nothing":
            result = "not runnable here (no TensorRT-capable GPU); record and plan validated"
        elif check["ran"] == "not loadable here":
            result = f"written, not loaded here: {check['reason']}"
        elif check["ran"] == "failed to load":
            result = f"FAILED TO LOAD ({check['reason']})"
        elif check["ok"]:
            result = f"OK via {check['ran']}, max |diff| {check['max_abs_diff']:.2e}"
        else:
            result = f"MISMATCH ({check['reason'] or 'max |diff| %s' % check['max_abs_diff']})"
        print(f"  {row['format']:<7} {_shown(row['path']):<40} {row['size']:>12,} B  {result}")
