"""Each measurement as a pair: trtpack's number and the baseline's, measured in the same run (interleaved)."""
import gc
import os
import time
import warnings

import torch

import trtpack
from bench import models, timing
from bench.hand_compile import hand_compile


def paired(trtpack_fn, baseline_fn, reps: int) -> dict:
    """Runs baseline then trtpack `reps` times; the ratio is taken per repetition (noise hits both alike)."""
    ours, theirs = [], []
    for _ in range(reps):
        theirs.append(_seconds(baseline_fn))
        ours.append(_seconds(trtpack_fn))
    return result(ours, theirs)


def result(ours: list, theirs: list) -> dict:
    return {"trtpack": timing.stats(ours), "baseline": timing.stats(theirs),
            "ratio": timing.stats([a / b for a, b in zip(ours, theirs)])}


def _seconds(fn) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _load_plain(path: str):
    with open(path, "rb") as f:  # as trtpack.load reads it
        return torch.export.load(f).module()


def compile_model(model, inputs, targets):
    return _quiet(trtpack.compile, model, inputs, dynamic_shapes=models.dynamic_shapes(), targets=targets,
                  fallback=True)


def plan_bytes(compiled) -> int:
    return sum(r["plan_size"] for r in compiled.meta["trtpack_summary"]["regions"])


class SameBytes(torch.nn.Module):
    """The plain model plus an unused uint8 buffer as large as the plans: a floor with the artifact's byte count."""

    def __init__(self, model: torch.nn.Module, extra_bytes: int):
        super().__init__()
        self.model = model
        self.register_buffer("extra", torch.zeros(extra_bytes, dtype=torch.uint8))

    def forward(self, x):
        return self.model(x)


def for_size(weight_mb: float, reps: int, workdir: str, targets: list, with_pt2: bool) -> dict:
    """Every per-size metric for an MLP of about `weight_mb` MB of fp32 weights."""
    model = models.mlp(weight_mb)
    inputs = models.example_inputs(model)
    out = {"weight_mb": weight_mb, "weight_bytes": models.weight_bytes(model)}

    holder = {}
    out["compile"] = paired(lambda: holder.update(m=compile_model(model, inputs, targets)),
                            lambda: hand_compile(model, inputs, targets), reps)
    compiled = holder.pop("m")
    summary = compiled.meta["trtpack_summary"]
    out["compile"]["stages"] = summary["seconds"]
    out["regions"] = len(summary["regions"])
    plain = torch.export.export(model, inputs, dynamic_shapes=models.dynamic_shapes(), strict=False)

    # The floor keeps the .pt2 suffix: torch warns about any other.
    ours, floor = os.path.join(workdir, "trtpack.ep"), os.path.join(workdir, "plain_ep.pt2")
    same = os.path.join(workdir, "same_bytes_ep.pt2")
    padded = torch.export.export(SameBytes(model, plan_bytes(compiled)), inputs,
                                 dynamic_shapes=models.dynamic_shapes(), strict=False)
    out["save"] = paired(lambda: trtpack.save(compiled, ours), lambda: torch.export.save(plain, floor), reps)
    out["save"]["same_bytes_floor"] = timing.timed(lambda: torch.export.save(padded, same), reps)
    out["load"] = paired(lambda: _quiet(trtpack.load, ours), lambda: _load_plain(floor), reps)
    out["load"]["same_bytes_floor"] = timing.timed(lambda: _load_plain(same), reps)
    out["same_bytes_file"] = os.path.getsize(same)
    # trtpack's own cost: torch.export alone on the very program (and file) trtpack saves and loads.
    out["save"]["same_program_floor"] = timing.timed(lambda: torch.export.save(compiled._trtpack_program, same), reps)
    out["load"]["same_program_floor"] = timing.timed(lambda: _load_plain(ours), reps)
    os.remove(same)
    del padded

    size, expected = os.path.getsize(ours), plan_bytes(compiled) + out["weight_bytes"]
    out["size"] = {"trtpack": size, "baseline": expected, "plan_bytes": plan_bytes(compiled),
                   "floor_file": os.path.getsize(floor), "ratio": timing.stats([size / expected])}

    peaks = [timing.load_peak_rss(ours)["delta_bytes"] for _ in range(reps)]
    floor_peak = timing.load_peak_rss(floor, kind="plain")["delta_bytes"]
    out["load_rss"] = {"trtpack": timing.stats(peaks), "baseline": size, "floor_rss_bytes": floor_peak,
                       "floor_file": out["size"]["floor_file"], "ratio": timing.stats([p / size for p in peaks])}

    if with_pt2:
        out["pt2_load"] = pt2_load(compiled, plain, workdir, reps)
    return out


def pt2_load(compiled, plain, workdir: str, reps: int) -> dict:
    ours, floor = os.path.join(workdir, "trtpack_aoti.pt2"), os.path.join(workdir, "plain_aoti.pt2")
    started = time.perf_counter()
    trtpack.save(compiled, ours)
    ours_build = time.perf_counter() - started
    started = time.perf_counter()
    torch._inductor.aoti_compile_and_package(plain, package_path=floor)
    floor_build = time.perf_counter() - started
    found = paired(lambda: _quiet(trtpack.load, ours), lambda: torch._inductor.aoti_load_package(floor), reps)
    found["package_seconds"] = {"trtpack": ours_build, "baseline": floor_build}
    found["file_bytes"] = {"trtpack": os.path.getsize(ours), "baseline": os.path.getsize(floor)}
    return found


def call_overhead(iterations: int, reps: int, targets: list) -> dict:
    """Per-call time of a small fallback=True program (torch.cond + engine_usable, reference branch on CPU)
    against the plain eager model; also the plain exported module, to separate export's own call cost."""
    model = models.mlp(0.1)
    inputs = models.example_inputs(model)
    compiled = compile_model(model, inputs, targets)
    exported = torch.export.export(model, inputs, dynamic_shapes=models.dynamic_shapes(), strict=False).module()

    def loop(fn):
        def run():
            with torch.no_grad():
                for _ in range(iterations):
                    fn(*inputs)
        return run

    with torch.no_grad():
        for fn in (model, compiled, exported):
            for _ in range(20):
                fn(*inputs)
    found = paired(loop(compiled), loop(model), reps)
    exported_seconds = [_seconds(loop(exported)) for _ in range(reps)]
    plan = next(b for _, b in compiled.named_buffers() if b.dtype == torch.uint8)
    meta = next(n.args[2] for n in compiled._trtpack_program.graph.nodes
                if n.target is torch.ops.trtpack.engine_usable.default)
    usable_seconds = [_seconds(loop(lambda x: torch.ops.trtpack.engine_usable([x], plan, meta))) for _ in range(reps)]
    found["iterations"] = iterations
    found["per_call_us"] = {"trtpack": found["trtpack"]["median"] / iterations * 1e6,
                            "baseline": found["baseline"]["median"] / iterations * 1e6,
                            "exported_plain": timing.stats(exported_seconds)["median"] / iterations * 1e6,
                            "engine_usable_alone": timing.stats(usable_seconds)["median"] / iterations * 1e6}
    return found
