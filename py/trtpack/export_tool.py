"""What the CLI's export, run and extract commands do (the CLI itself only parses arguments)."""
import json
import os
import subprocess
import sys
import time

import torch

import trtpack
from trtpack import artifact, machine, roundtrip, serialize
from trtpack.model_file import load_model_file

SUFFIX = {"ep": ".ep", "pt2": ".pt2", "engine": ".engine"}


def export(model_path: str, *, out=None, formats=("ep", "pt2", "engine"), fallback=True, targets=None,
           min_block_size=None, verify=True) -> bool:
    """Compiles, writes each format, checks each artifact in a fresh process; True when every check that
    could run here matched eager."""
    unknown = [f for f in formats if f not in SUFFIX]
    if unknown:
        raise trtpack.TrtpackError(f"trtpack: unknown format(s) {unknown}; choose from {list(SUFFIX)}")
    spec = load_model_file(model_path)
    out = out or os.path.join(os.environ.get("BUILD_WORKING_DIRECTORY", ""), "out", spec.name)
    os.makedirs(out, exist_ok=True)
    options = {"fallback": fallback, "verify": verify, **spec.compile_options}
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
            serialize.load_engine(row["path"])  # the plan and its sidecar validate
        elif row.get("path"):
            row["check"] = _check_fresh_process(row["path"], case)
    _print_summary(compiled, compile_s, rows)
    return not [r for r in rows if r.get("check") and not r["check"]["ok"] and r["check"]["ran"] != "nothing"]


def _write(compiled, name: str, out: str, fmt: str) -> list:
    path = os.path.join(out, name + SUFFIX[fmt])
    start = time.perf_counter()
    if fmt == "engine":
        found = artifact.engines(serialize.exported_program(compiled))
        if len(found) == 0:
            return [{"format": fmt, "path": None, "note": "no engine: nothing in this model was converted"}]
        rows = []
        for engine in found:
            one = path if len(found) == 1 else os.path.join(out, f"{name}.{engine.name}.engine")
            serialize.save_engine(engine, one)
            rows.append({"format": fmt, "path": one, "size": os.path.getsize(one),
                         "seconds": time.perf_counter() - start, "region": len(found) > 1})
        return rows
    try:
        serialize.save(compiled, path)
    except trtpack.TrtpackError as e:
        return [{"format": fmt, "path": None, "note": str(e).splitlines()[0]}]
    return [{"format": fmt, "path": path, "size": os.path.getsize(path), "seconds": time.perf_counter() - start}]


def _shown(path: str) -> str:
    """`path` relative to where the user ran the command, when it lies below it."""
    here = os.environ.get("BUILD_WORKING_DIRECTORY") or os.getcwd()
    relative = os.path.relpath(os.path.abspath(path), here)
    return path if relative.startswith("..") else relative


def _check_fresh_process(path: str, case: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "trtpack.roundtrip", path, case], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"ok": False, "ran": "crashed", "reason": tail, "max_abs_diff": None}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _print_summary(compiled, compile_s: float, rows: list) -> None:
    summary = compiled.meta.get("trtpack_summary", {})
    seconds = summary.get("seconds", {})
    split = ", ".join(f"{k} {seconds[k]:.1f} s" for k in ("export", "onnx", "verify", "build", "lower") if k in seconds)
    print(f"\ncompiled in {compile_s:.1f} s ({split})")
    engines = artifact.engines(serialize.exported_program(compiled))
    print(f"engines: {len(engines)}; ops in TensorRT: {summary.get('ops_in_engines', '?')}, "
          f"left in PyTorch: {summary.get('ops_in_pytorch', '?')}")
    for engine in engines:
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
    for engine in engines[:1]:
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
        elif check["ok"]:
            result = f"OK via {check['ran']}, max |diff| {check['max_abs_diff']:.2e}"
        else:
            result = f"MISMATCH ({check['reason'] or 'max |diff| %s' % check['max_abs_diff']})"
        print(f"  {row['format']:<7} {_shown(row['path']):<40} {row['size']:>12,} B  {result}")


def run(path: str, *, inputs=None, iterations: int = 20) -> None:
    device = "cuda" if torch.cuda.is_available() else None  # engines run on CUDA tensors
    program = trtpack.load(path, device=device)
    info = trtpack.inspect(path, device=device)
    if inputs:
        args, kwargs, _ = roundtrip.read_case(inputs)
    else:
        args, kwargs = _random_inputs(path, info), {}
    if device is not None:
        args, kwargs = [a.to(device) for a in args], {k: v.to(device) for k, v in kwargs.items()}
    ran = "tensorrt" if all(e["usable_here"] for e in info["engines"]) else "pytorch fallback"
    with torch.no_grad():
        program(*args, **kwargs)  # warm-up (deserializes engines)
        times = []
        for _ in range(iterations):
            start = time.perf_counter()
            program(*args, **kwargs)
            times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    pick = lambda q: times[min(len(times) - 1, int(q * len(times)))]  # noqa: E731
    print(f"{path}: {iterations} iterations via {ran}: p50 {pick(0.5):.3f} ms, p90 {pick(0.9):.3f} ms, "
          f"p99 {pick(0.99):.3f} ms, min {times[0]:.3f} ms")


def _random_inputs(path: str, info: dict) -> list:
    if info["format"] == "engine":
        specs = info["engines"][0]["inputs"]
        symbols = info["engines"][0]["symbols"]
    else:
        raise trtpack.TrtpackError(f"trtpack: {path} needs --inputs (a safetensors file with in.0, in.1, ...): "
                                   "random inputs are only made for .engine files, whose record lists them")
    if any(isinstance(d, str) and d not in symbols for spec in specs for d in spec["shape"]):
        raise trtpack.TrtpackError(f"trtpack: {path}'s inputs have derived dims; pass --inputs")
    shapes = [[d if isinstance(d, int) else symbols[d]["opt"] for d in spec["shape"]] for spec in specs]
    return [torch.randn(s).to(getattr(torch, spec["dtype"])) for s, spec in zip(shapes, specs)]


def extract(path: str, name: str, out: str) -> None:
    program = serialize.load_quiet(path)
    found = {e.name: e for e in program.engines}
    if name not in found:
        raise trtpack.TrtpackError(f"trtpack: {path} has no engine {name!r}; it has: {', '.join(found) or 'none'}")
    serialize.save_engine(found[name], out)
    print(f"wrote {out} ({found[name].plan.numel():,} bytes) and {out}.json")

