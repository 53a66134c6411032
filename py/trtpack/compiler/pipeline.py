"""compile(): the pipeline that runs the stages in order, and the summary of what it did.

Stages, one module each: export → (program cache) → decompose → support + partition → onnx_export (ONNX, verify) →
build (plan, meta; engine cache) → assemble (or reexport). The model is exported and decomposed once; each region's
program, its ONNX model and the lowered program come from that one graph.
"""
import logging
import time
from dataclasses import dataclass

import torch
from torch.utils import _pytree as pytree

from trtpack.compiler import (assemble, build, decomposition, fold, onnx_export, partition as partitioning,
                              program_cache, reexport, support, views)
from trtpack.compiler.backends import get_backend
from trtpack.compiler.export import export_program
from trtpack.compiler.progress import Progress
from trtpack.runtime import branches, cuda_graphs as graphs, input_check
from trtpack.runtime.executor import test_double
from trtpack.compiler.region import RegionEngine, bisect_refusal, compile_region, example_region_inputs
from trtpack.compiler.symbolic import SymbolTable
from trtpack import error_translation
from trtpack.errors import IncompatibleEngineError, UnsupportedGraphError

log = logging.getLogger("trtpack.compiler")

# Refused nodes looked for per compile; beyond that a refused region stays in PyTorch whole (each costs an ONNX
# export and a build, bisection about log2(ops) of them).
MAX_REFUSALS = 16

__all__ = ["compile", "convert_exported_program_to_trt_engine", "build_single_engine"]


@dataclass
class Prepared:
    """What compile and build_single_engine share: the one exported program, its partition and symbols, and the
    tensors each region receives on the example inputs."""
    program: torch.export.ExportedProgram
    gm: torch.fx.GraphModule
    parts: partitioning.Partitioning
    symbols: SymbolTable
    region_inputs: dict   # region name -> example tensors; only with verify (it runs the model eagerly)
    folded: fold.Folded   # what constant folding computed at compile time (compile only)


def export(model, arg_inputs, kwarg_inputs, dynamic_shapes, progress) -> torch.export.ExportedProgram:
    """The model as torch.export gives it (not decomposed yet: the program cache's key is taken on this)."""
    with progress.stage("export"):
        return export_program(model, arg_inputs, kwarg_inputs, dynamic_shapes=dynamic_shapes, decompose=False)


def prepare(program, arg_inputs, kwarg_inputs, min_block_size, progress, verify, fold_constants=False) -> Prepared:
    with progress.stage("decompose"):
        program = decomposition.decompose(program)
        gm = program.module()
    folded = fold.Folded()
    if fold_constants:
        with progress.stage("fold"):
            folded = fold.fold(gm)
    with progress.stage("views"):  # partition would do it first; its own stage so that its cost shows
        views.resolve(gm)
    with progress.stage("partition"):
        parts = partitioning.partition(gm, min_block_size)
        flat_inputs = pytree.tree_leaves((arg_inputs, kwarg_inputs))
        symbols = SymbolTable(program, flat_inputs)
        region_inputs = example_region_inputs(gm, flat_inputs, parts.regions) if verify else {}
    return Prepared(program, gm, parts, symbols, region_inputs, folded)


def compile(model, arg_inputs, *, kwarg_inputs=None, dynamic_shapes=None, targets=None, min_block_size=5,
            fallback=False, verify=False, backend=None, cache=True, cuda_graphs=False) -> torch.fx.GraphModule:
    """Compiles `model` into a program whose convertible regions run as TensorRT engines.

    Args:
        model: an nn.Module (exported with torch.export on the inputs) or an ExportedProgram.
        arg_inputs / kwarg_inputs: example inputs; they also set each dynamic dim's optimisation-profile 'opt'.
        dynamic_shapes: torch.export dynamic_shapes (torch.export.Dim) for an nn.Module.
        targets: compute capabilities, e.g. ['sm86']; None builds the backend's portable default.
        min_block_size: fewest compute ops a region needs to become an engine.
        fallback: wrap each engine in torch.cond(engine_usable, engine, original PyTorch ops), so the program runs
            anywhere; without it, running where an engine is unusable raises IncompatibleEngineError. The returned
            module decides each engine_usable once per device and then calls the chosen branch directly
            (trtpack.runtime.branches.resolve); what trtpack.save writes keeps the torch.cond.
        verify: run each region's ONNX model with onnxruntime against PyTorch; raise beyond tolerance.
        backend: 'tensorrt_rtx' (default) or 'tensorrt' (unverified).
        cache: reuse the whole compiled program from the program cache ($TRTPACK_CACHE_DIR/programs, see
            trtpack.compiler.program_cache), else plans from the engine cache ($TRTPACK_CACHE_DIR/engines, see
            trtpack.compiler.engine_cache), and store what is new; False compiles everything and leaves both alone. The
            program cache is skipped with verify=True (verification runs on these inputs every time).
        cuda_graphs: True (or the number of input shapes to keep, default trtpack.runtime.cuda_graphs.
            DEFAULT_MAX_GRAPHS) to capture the whole program in a CUDA graph once per input shape and replay it;
            where capture is impossible it runs eagerly and says why once (see trtpack.runtime.cuda_graphs).

    Returns:
        A GraphModule that runs like the model. `module.meta["trtpack_summary"]` describes the regions, what
        stayed in PyTorch and why, plan sizes, targets, cache hits and where the time went (this call's; on a
        program cache hit, `program_cache` is "hit", every region a cache hit, and the stages only this call's).

    Example:
        >>> module = trtpack.compile(model, (torch.randn(2, 3, 32, 32),), fallback=True, targets=["sm86"])
    """
    started = time.perf_counter()
    progress = Progress()
    chosen = get_backend(backend)
    arg_inputs, kwarg_inputs = tuple(arg_inputs), dict(kwarg_inputs or {})
    program = export(model, arg_inputs, kwarg_inputs, dynamic_shapes, progress)

    program_key, key_seconds = None, 0.0
    if cache and not verify and test_double() is None:  # the stand-in (a test double) learns plans while building
        start = time.perf_counter()
        program_key = program_cache.key(program, pytree.tree_leaves((arg_inputs, kwarg_inputs)), {
            "targets": targets, "min_block_size": min_block_size, "fallback": fallback, "verify": verify,
            "backend": chosen.name, "backend_version": _backend_version(chosen)})
        hit = program_cache.get(program_key, program) if program_key else None
        key_seconds = time.perf_counter() - start
        progress.step("program cache", "hit" if hit else "miss", key_seconds)
        if hit:
            return graphs.attach(_from_program_cache(hit, progress.seconds["export"], key_seconds, started),
                                 cuda_graphs)

    prepared = prepare(program, arg_inputs, kwarg_inputs, min_block_size, progress, verify, fold_constants=True)
    parts, symbols = prepared.parts, prepared.symbols

    engines, left_out, refused = {}, [vars(item) for item in parts.left_out], []
    refusal_seconds = 0.0  # regions TensorRT refused: the failed attempt, finding the node, splitting
    queue = list(parts.regions)
    while queue:
        name = queue.pop(0)
        attempt = time.perf_counter()
        try:
            with progress.stage(f"{name} ({sum(parts.region_ops[name].values())} ops)"):
                engines[name] = compile_region(
                    prepared.gm, name, prepared.region_inputs.get(name), symbols, chosen, targets, verify,
                    min_block_size, range_constraints=prepared.program.range_constraints, use_cache=cache,
                    progress=progress.step)
        except onnx_export.VerificationError:
            raise
        except (build.RefusedByTensorRT, onnx_export.NotTranslated) as error:
            pieces = None
            if len(refused) < MAX_REFUSALS:
                pieces = _without_refused(prepared, name, error, symbols, chosen, targets, min_block_size, progress)
            refusal_seconds += time.perf_counter() - attempt
            if pieces is not None:
                refused += pieces.refused
                left_out += pieces.refused + [vars(item) for item in pieces.left_out]
                parts.region_ops.update(pieces.region_ops)
                queue[:0] = pieces.regions
                if verify:
                    prepared.region_inputs.update(example_region_inputs(
                        prepared.gm, pytree.tree_leaves((arg_inputs, kwarg_inputs)), pieces.regions))
                continue
            log.warning("%s stays in PyTorch: %s", name, error)
            left_out += [{"node": name, "op": op, "count": count, "reason": str(error), "location": ""}
                         for op, count in parts.region_ops[name].items()]
            continue
        except UnsupportedGraphError as error:
            log.warning("%s stays in PyTorch: %s", name, error)
            left_out += [{"node": name, "op": op, "count": count, "reason": str(error), "location": ""}
                         for op, count in parts.region_ops[name].items()]
            continue
        timings = ", ".join(f"{stage} {seconds:.2f}s" for stage, seconds in engines[name].seconds.items())
        log.info("%s (%d ops): %s", name, sum(parts.region_ops[name].values()), timings)

    with progress.stage("lower"):
        built = {n: (e.plan, e.meta) for n, e in engines.items()}
        reexported = assemble.lowered_program(prepared.gm, prepared.program, built, fallback, symbols,
                                              (arg_inputs, kwarg_inputs))
        if reexported is None:  # a program the assembly does not cover: trace it again
            reexport.replace_regions(prepared.gm, built, fallback)
            reexported = reexport.reexport(prepared.gm, prepared.program, symbols, arg_inputs, kwarg_inputs)
        lowered = branches.resolve(reexported.module())
    lowered._trtpack_program = reexported  # what trtpack.save writes (the portable torch.cond program), no re-export
    ranges = symbols.describe() or "all sizes static"
    input_check.install(lowered)
    error_translation.translate_errors(lowered, ranges)
    summary = _summary(parts, engines, left_out, refused, chosen, targets, fallback, min_block_size, {
        **{stage: progress.seconds[stage] for stage in ("export", "decompose", "fold", "views", "partition", "lower")},
        "refusals": refusal_seconds, "program_cache": key_seconds})
    summary["program_cache"] = "miss" if program_key else "off"
    summary["folded"] = prepared.folded.summary()  # subgraphs of weights and static sizes computed once, here
    if program_key:
        start = time.perf_counter()
        program_cache.put(program_key, reexported, summary, ranges)
        summary["seconds"]["program_cache"] = round(key_seconds + time.perf_counter() - start, 3)
    summary["seconds"]["total"] = round(time.perf_counter() - started, 3)
    lowered.meta["trtpack_summary"] = summary
    return graphs.attach(lowered, cuda_graphs)


def _without_refused(prepared, name, error, symbols, backend, targets, min_block_size, progress):
    """Region `name` split around the nodes TensorRT refused (named by its parser, else found by bisection) or the
    ONNX exporter could not translate (it names them): the partition of the rest (partition.split_region) plus
    `refused`, the summary entries of those nodes; None when no node of the region can be blamed."""
    region = getattr(prepared.gm, name)
    named = {node.name: node for node in region.graph.nodes}
    # only an op can be left out (a refusal pinned on an input or a weight would change nothing and come back)
    blamed = {node: reason for node, reason in error.fx_nodes
              if node in named and support.is_compute_node(named[node])}
    if not blamed:
        with progress.stage(f"{name}: finding the node TensorRT refuses"):
            try:
                node, reason = bisect_refusal(prepared.gm, name, symbols, backend, targets,
                                              range_constraints=prepared.program.range_constraints)
            except Exception as failure:  # noqa: BLE001  (the region then stays in PyTorch whole, as before)
                log.warning("%s: could not find the node TensorRT refuses: %s", name, failure)
                return None
        blamed = {node: reason}
    log.warning("%s: %s %s; they stay in PyTorch and the rest is built", name,
                "the ONNX exporter could not translate" if error.stage == "onnx" else "TensorRT refused",
                ", ".join(f"{node} ({reason})" for node, reason in blamed.items()))
    pieces = partitioning.split_region(prepared.gm, name, blamed, min_block_size)
    said = ("the ONNX exporter could not translate it" if error.stage == "onnx" else
            f"refused by TensorRT while building ({error.stage})")
    pieces.refused = [{"node": node, "op": partitioning.op_name(named[node]), "count": 1, "stage": error.stage,
                       "reason": f"{said}: {reason}",
                       "location": partitioning.source_location(named[node])} for node, reason in blamed.items()]
    return pieces


def _backend_version(backend) -> str:
    try:
        return getattr(backend.load(), "__version__", "")
    except IncompatibleEngineError:  # not installed: no region will build, and the key says so
        return "not installed"


def _from_program_cache(hit, export_seconds, cache_seconds, started) -> torch.fx.GraphModule:
    """What compile returns, from a program cache hit: the same kind of module a cold compile returns."""
    start = time.perf_counter()
    lowered = branches.resolve(hit.program.module())
    lowered._trtpack_program = hit.program
    input_check.install(lowered)
    error_translation.translate_errors(lowered, hit.ranges)
    summary = dict(hit.summary, program_cache="hit", cache_hits=len(hit.summary["regions"]),
                   regions=[dict(region, cache_hit=True, seconds={}) for region in hit.summary["regions"]])
    summary["seconds"] = {"export": round(export_seconds, 3),
                          "program_cache": round(cache_seconds + time.perf_counter() - start, 3),
                          "total": round(time.perf_counter() - started, 3)}
    lowered.meta["trtpack_summary"] = summary
    return lowered


def _summary(parts, engines, left_out, refused, backend, targets, fallback, min_block_size, seconds) -> dict:
    regions = []
    for name, engine in engines.items():
        ops = parts.region_ops[name]
        entry = {"name": name, "ops": ops, "num_ops": sum(ops.values()), "plan_size": len(engine.plan),
                 "targets": engine.targets, "seconds": {k: round(v, 3) for k, v in engine.seconds.items()}}
        if engine.verification:
            entry.update(max_abs_error=engine.verification.max_abs_error,
                         max_rel_error=engine.verification.max_rel_error)
        entry["cache_hit"] = engine.cache_hit
        regions.append(entry)
    for stage in ("cache_key", "cache_read", "onnx", "verify", "build"):
        seconds.setdefault(stage, 0.0)
        seconds[stage] += sum(e.seconds.get(stage, 0.0) for e in engines.values())
    return {
        "backend": backend.name, "backend_verified": backend.verified, "requested_targets": targets,
        "fallback": fallback, "min_block_size": min_block_size, "regions": regions,
        "cache_hits": sum(e.cache_hit for e in engines.values()),
        "ops_in_engines": sum(r["num_ops"] for r in regions),
        "ops_in_pytorch": sum(item.get("count", 1) for item in left_out),
        "left_in_pytorch": left_out,
        # both also in left_in_pytorch; apart from what the support table leaves out
        "refused_by_tensorrt": [r for r in refused if r["stage"] != "onnx"],
        "not_translated_to_onnx": [r for r in refused if r["stage"] == "onnx"],
        "splits": [vars(item) for item in parts.splits],  # the PyTorch ops between two engines, with why
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }


def build_single_engine(exported_program, arg_inputs, *, kwarg_inputs=None, targets=None, verify=False,
                        backend=None, cache=True) -> RegionEngine:
    """The whole program as one engine (plan + meta); any unsupported node raises UnsupportedGraphError."""
    arg_inputs, kwarg_inputs = tuple(arg_inputs), dict(kwarg_inputs or {})
    progress = Progress()
    prepared = prepare(export(exported_program, arg_inputs, kwarg_inputs, None, progress), arg_inputs, kwarg_inputs,
                       1, progress, verify)
    parts = prepared.parts
    if parts.left_out:  # with min_block_size=1 every supported op is in a region: what is left out is unsupported
        raise UnsupportedGraphError(
            "trtpack: the program cannot become one TensorRT engine; unsupported nodes:\n  - " + "\n  - ".join(
                f"{item.node} ({item.op}): {item.reason}\n      at {item.location or '(no source location)'}"
                for item in parts.left_out))
    if len(parts.regions) != 1:
        raise UnsupportedGraphError(f"trtpack: the program splits into {len(parts.regions)} independent parts; "
                                    "one engine needs one connected graph (use trtpack.compile instead)")
    name = parts.regions[0]
    return compile_region(prepared.gm, name, prepared.region_inputs.get(name), prepared.symbols, get_backend(backend),
                          targets, verify, 1, range_constraints=prepared.program.range_constraints, use_cache=cache,
                          progress=progress.step)


def convert_exported_program_to_trt_engine(exported_program, arg_inputs, *, kwarg_inputs=None, targets=None,
                                           verify=False, backend=None) -> bytes:
    """The whole ExportedProgram as one TensorRT plan (bytes); unsupported nodes raise UnsupportedGraphError
    listing each with its source location. `build_single_engine` also returns the record's meta."""
    return build_single_engine(exported_program, arg_inputs, kwarg_inputs=kwarg_inputs, targets=targets,
                               verify=verify, backend=backend).plan
