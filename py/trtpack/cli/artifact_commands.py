"""The CLI's commands on a saved artifact: inspect (text form), run, extract. Each reads the artifact once."""
import math
import time
import warnings

import torch

import trtpack
from trtpack import machine, record
from trtpack.artifacts import engine as engine_file, sniff
from trtpack.cli import roundtrip

MAX_RANDOM_INPUT_BYTES = 4 << 30  # run's random inputs; larger runs take --inputs


def format_inspect(info: dict) -> str:
    lines = [f"{info['path']}: {info['format']}, {info['size']:,} bytes, trtpack {info.get('trtpack_version')}, "
             f"torch {info.get('torch_version')}"]
    if "inputs" in info:
        lines.append(f"  inputs: {', '.join(info['inputs'])}   outputs: {', '.join(info['outputs'])}")
    given = info.get("dim_names", {})
    for sym, (lo, hi) in info.get("symbols", {}).items():
        shown = f"{given[sym]} ({sym})" if sym in given else sym
        lines.append(f"  symbol {shown}: [{lo}, {'inf' if hi is None else hi}]")
    for e in info["engines"]:
        digest = f"xxh3 {e['plan_xxh3'][:16]}" if "plan_xxh3" in e else f"sha256 {e['plan_sha256'][:16]}"
        lines.append(f"  engine {e['name']}: {e['backend']} {e['backend_version']}, targets {','.join(e['targets'])}, "
                     f"plan {e['plan_size']:,} bytes, {digest}…, fallback {'yes' if e['fallback'] else 'no'}")
        named = e.get("dim_names", {})
        for kind in ("inputs", "outputs"):
            specs = ", ".join(f"{t['name']}:{t['dtype']}[{', '.join(str(named.get(d, d)) for d in t['shape'])}]"
                              for t in e[kind])
            lines.append(f"    {kind}: {specs}")
        lines.append(f"    here: {'usable' if e['usable_here'] else 'not usable'}" +
                     (f" — {e['reason']}" if e["reason"] else ""))
    ops = info["ops"]
    lines.append(f"  trtpack ops: " + (f"native, {ops['library']} (built for torch {ops['built_for_torch']})"
                                      if ops["kind"] == "native" else f"registered from Python ({ops['reason']})"))
    lines.append(f"  runs on this machine: {'yes' if info['runs_here'] else 'no'}")
    return "\n".join(lines)


def run(path: str, *, inputs=None, iterations: int = 20, trust_native_code: bool = False) -> None:
    device = "cuda" if torch.cuda.is_available() else None  # engines run on CUDA tensors
    with warnings.catch_warnings():  # the one line printed below says which path ran and why
        warnings.simplefilter("ignore")
        program = trtpack.load(path, device=device, trust_native_code=trust_native_code)
    if inputs:
        args, kwargs, _ = roundtrip.read_case(inputs)
    else:
        args, kwargs = random_inputs(path, program), {}
    if device is not None:
        args, kwargs = [a.to(device) for a in args], {k: v.to(device) for k, v in kwargs.items()}
    here = machine.describe(device)
    refusals = [v["reason"] for v in (record.compatibility(e.record, here) for e in program.engines) if not v["usable"]]
    ran = f"pytorch fallback ({refusals[0]})" if refusals else "tensorrt"
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


def random_inputs(path: str, program) -> list:
    """Random tensors shaped like the program's inputs: each dynamic dim of an engine at its 'opt' size, of a
    program at the smallest size it takes."""
    specs = program.input_specs
    if program.format == "engine":
        sizes = {name: r["opt"] for name, r in program.engines[0].record["symbols"].items()}
    else:  # the program's own symbols, which are not the engines' s0, s1...
        sizes = {name: max(low, 1) for name, (low, _) in program.symbols.items()}
    if specs is None or any(spec["dtype"] is None for spec in specs):
        raise trtpack.TrtpackError(f"trtpack: {path} does not record its inputs' shapes (or takes non-tensor inputs); "
                                   "pass --inputs (a safetensors file with in.0, in.1, ...)")
    try:
        shapes = [[record.eval_dim(d, sizes) for d in spec["shape"]] for spec in specs]
    except trtpack.FormatError:
        raise trtpack.TrtpackError(f"trtpack: {path}'s inputs have dims no engine records a size for; pass --inputs "
                                   "(a safetensors file with in.0, in.1, ...)") from None
    total = sum(math.prod(shape) * 4 for shape in shapes)  # drawn as float32 first
    if any(d < 0 for shape in shapes for d in shape) or total > MAX_RANDOM_INPUT_BYTES:
        raise trtpack.TrtpackError(f"trtpack: {path}'s inputs at these sizes ({shapes}) would take {total:,} bytes of "
                                   f"random data (at most {MAX_RANDOM_INPUT_BYTES:,}); pass --inputs (a safetensors file "
                                   "with in.0, in.1, ...) of the sizes you want to run")
    return [torch.randn(shape).to(getattr(torch, spec["dtype"])) for shape, spec in zip(shapes, specs)]


def extract(path: str, name: str, out: str) -> None:
    if sniff(path) == "aot_inductor":
        raise trtpack.FormatError(f"trtpack: {path} is an AOTInductor package, which keeps its plans inside the "
                                  "compiled package; extract the engine from the .ep saved from the same program.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = trtpack.load(path)
    found = {e.name: e for e in program.engines}
    if name not in found:
        raise trtpack.TrtpackError(f"trtpack: {path} has no engine {name!r}; it has: {', '.join(found) or 'none'}")
    engine_file.write(found[name], out)
    print(f"wrote {out} ({found[name].plan.numel():,} bytes) and {out}.json")
