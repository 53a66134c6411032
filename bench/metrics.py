"""Each measurement as a pair: trtpack's number and the baseline's, measured in the same run (interleaved)."""
import contextlib
import gc
import os
import tempfile
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


def compile_model(model, inputs, targets, fallback=True, cache=False, min_block_size=5):
    return _quiet(trtpack.compile, model, inputs, dynamic_shapes=models.dynamic_shapes(), targets=targets,
                  fallback=fallback, cache=cache, min_block_size=min_block_size)


@contextlib.contextmanager
def _cache_dir(folder: str):
    before = os.environ.get("TRTPACK_CACHE_DIR")
    os.environ["TRTPACK_CACHE_DIR"] = folder
    try:
        yield
    finally:
        if before is None:
            del os.environ["TRTPACK_CACHE_DIR"]
        else:
            os.environ["TRTPACK_CACHE_DIR"] = before


COMPILE_METRICS = ("compile", "compile_fallback", "cache_hit")
FILE_METRICS = ("save", "load", "size", "load_rss")  # measured together, on the same files


def compile_metrics(model, inputs, targets: list, reps: int, wanted=COMPILE_METRICS) -> tuple:
    """compile (fallback=False) and compile_fallback (fallback=True), both without the cache, each against the same
    hand-run of the repetition; cache_hit: compiles with warm caches against the cold one that filled them (a fresh
    cache folder). Only the `wanted` ones. Returns (metrics, the last compiled module: fallback=True if measured)."""
    out, holder = {}, {}
    if {"compile", "compile_fallback"} & set(wanted):
        hand, plain, fallback = [], [], []
        for _ in range(reps):
            hand.append(_seconds(lambda: hand_compile(model, inputs, targets)))
            plain.append(_seconds(lambda: holder.update(plain=compile_model(model, inputs, targets, fallback=False))))
            fallback.append(_seconds(lambda: holder.update(fallback=compile_model(model, inputs, targets))))
        out = {"compile": result(plain, hand), "compile_fallback": result(fallback, hand)}
        out["compile"]["stages"] = holder["plain"].meta["trtpack_summary"]["seconds"]
        out["compile_fallback"]["stages"] = holder["fallback"].meta["trtpack_summary"]["seconds"]
    if "cache_hit" in wanted:
        with tempfile.TemporaryDirectory(prefix="trtpack-bench-cache-") as folder, _cache_dir(folder):
            cold = _seconds(lambda: holder.update(cold=compile_model(model, inputs, targets, fallback=False,
                                                                     cache=True)))
            warm = []
            for _ in range(reps):
                warm.append(_seconds(lambda: holder.update(warm=compile_model(model, inputs, targets,
                                                                              fallback=False, cache=True))))
        hits = holder["warm"].meta["trtpack_summary"]
        out["cache_hit"] = {"trtpack": timing.stats(warm), "baseline": timing.stats([cold]),
                            "ratio": timing.stats([w / cold for w in warm]), "stages": hits["seconds"],
                            "cold_stages": holder["cold"].meta["trtpack_summary"]["seconds"],
                            "hits": hits["cache_hits"], "regions": len(hits["regions"]),
                            "program_cache": hits["program_cache"]}
    return out, holder.get("fallback") or holder.get("warm")


def for_model(name: str, model, inputs, targets: list, reps: int, wanted=COMPILE_METRICS) -> dict:
    """The compile metrics of a whole model (ResNet-50-like, BERT-like)."""
    found, compiled = compile_metrics(model, inputs, targets, reps, wanted)
    summary = compiled.meta["trtpack_summary"]
    return {"name": name, "parameters": sum(p.numel() for p in model.parameters()),
            "regions": len(summary["regions"]), "ops_in_pytorch": summary["ops_in_pytorch"], **found}


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


def for_size(weight_mb: float, reps: int, workdir: str, targets: list, with_pt2: bool, wanted=None) -> dict:
    """The per-size metrics (all, or the `wanted` ones) for an MLP of about `weight_mb` MB of fp32 weights."""
    wanted = set(wanted or (*COMPILE_METRICS, *FILE_METRICS, "pt2_load"))
    model = models.mlp(weight_mb)
    inputs = models.example_inputs(model)
    out = {"weight_mb": weight_mb, "weight_bytes": models.weight_bytes(model)}

    found, compiled = compile_metrics(model, inputs, targets, reps, wanted & set(COMPILE_METRICS))
    out.update(found)
    if not (wanted & {*FILE_METRICS, "pt2_load"}):
        if compiled is not None:
            out["regions"] = len(compiled.meta["trtpack_summary"]["regions"])
        return out
    if compiled is None or not compiled.meta["trtpack_summary"]["fallback"]:
        compiled = compile_model(model, inputs, targets)
    out["regions"] = len(compiled.meta["trtpack_summary"]["regions"])
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

    if with_pt2 and "pt2_load" in wanted:
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
    found = paired(lambda: _quiet(trtpack.load, ours, trust_native_code=True), lambda: torch._inductor.aoti_load_package(floor), reps)
    found["package_seconds"] = {"trtpack": ours_build, "baseline": floor_build}
    found["file_bytes"] = {"trtpack": os.path.getsize(ours), "baseline": os.path.getsize(floor)}
    return found


def call_overhead(iterations: int, reps: int, targets: list) -> dict:
    """Per-call time of a small fallback=True program on CPU (engine_usable decided once, then the graph with the
    reference branch's ops inlined) against the plain exported module (torch.export.export(model).module()); eager
    and the torch.cond program as saved (trtpack.load before resolving) are reported alongside."""
    model = models.mlp(0.1)
    inputs = models.example_inputs(model)
    compiled = compile_model(model, inputs, targets, min_block_size=1)  # two linears and a relu: one engine
    exported = torch.export.export(model, inputs, dynamic_shapes=models.dynamic_shapes(), strict=False).module()

    def loop(fn):
        def run():
            with torch.no_grad():
                for _ in range(iterations):
                    fn(*inputs)
        return run

    unresolved = compiled._trtpack_program.module()  # the torch.cond program, called as is
    # One intra-op thread: the per-call cost is Python and dispatch, and on a shared 2-core machine a second thread
    # spin-waiting for a core made single calls swing 5x.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for fn in (model, compiled, exported, unresolved):
                for _ in range(20):
                    fn(*inputs)
        found = paired(loop(compiled), loop(exported), reps)
        eager_seconds = [_seconds(loop(model)) for _ in range(reps)]
        cond_seconds = [_seconds(loop(unresolved)) for _ in range(reps)]
    finally:
        torch.set_num_threads(threads)
    plan = next(b for _, b in compiled.named_buffers() if b.dtype == torch.uint8)
    meta = next(n.args[2] for n in compiled._trtpack_program.graph.nodes
                if n.target is torch.ops.trtpack.engine_usable.default)
    usable_seconds = [_seconds(loop(lambda x: torch.ops.trtpack.engine_usable([x], plan, meta))) for _ in range(reps)]
    found["iterations"] = iterations
    found["per_call_us"] = {"trtpack": found["trtpack"]["median"] / iterations * 1e6,
                            "exported_plain": found["baseline"]["median"] / iterations * 1e6,
                            "eager": timing.stats(eager_seconds)["median"] / iterations * 1e6,
                            "torch_cond_program": timing.stats(cond_seconds)["median"] / iterations * 1e6,
                            "engine_usable_alone": timing.stats(usable_seconds)["median"] / iterations * 1e6}
    return found
