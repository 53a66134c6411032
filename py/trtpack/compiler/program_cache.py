"""The program cache: whole compiled programs on disk, keyed on the model's ExportedProgram as torch.export returns
it (before decomposition), so compiling the same model again skips decomposition, partition, ONNX, the builds and
lowering: a hit costs torch.export, the key and reading the program back.

Where: $TRTPACK_CACHE_DIR/programs, beside the engine cache's `engines`; cap, eviction, info() and clear() are the
engine cache's (engine_cache.py), over both folders; keys are written with cache_keys.py's helpers.
Entry: `<key>.ep`, the lowered program as trtpack.save writes it, and `<key>.json` (the compile summary and the
compiled ranges), each written atomically, the .ep first: a `.json` is only there once its `.ep` is whole. Two
processes compiling the same model write the same entry; either's files pair up (the key fixes their content).
A damaged entry (unreadable JSON, or an .ep that trtpack.load would refuse) is reported once, removed and rebuilt.
"""
import importlib.metadata
import json
import logging
import os
import warnings
from dataclasses import dataclass
from typing import Optional

import torch

from trtpack import _native, artifacts, record
from trtpack.artifacts import atomic, ep
from trtpack.compiler import cache_keys, engine_cache
from trtpack.errors import TrtpackError

log = logging.getLogger("trtpack.compiler")


@dataclass
class Hit:
    program: torch.export.ExportedProgram  # the lowered, portable torch.cond program
    summary: dict                          # compile's summary of the cold compile
    ranges: str                            # the compiled ranges, as errors name them


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return ""


def key(program: torch.export.ExportedProgram, flat_inputs, options: dict) -> Optional[str]:
    """The key of compiling `program` (undecomposed) on inputs like `flat_inputs` with `options` (targets,
    min_block_size, fallback, verify, backend and its version): its graph (ops, arguments, each value's dtype and
    shape, symbolic ones included, submodule graphs), input/output specs, pytree specs, ranges, every parameter,
    buffer and constant (dtype, shape, stride, bytes), the example inputs' shapes and dtypes (they set the profiles'
    opt), and trtpack's, the record format's, torch's, onnx's and onnxscript's versions.
    None when the program holds a constant that is not a tensor (its content cannot be hashed): it is not cached."""
    digest = cache_keys.new_digest()
    versions = {"trtpack": _native.core.__version__, "format": list(record.FORMAT_VERSION), "torch": torch.__version__,
                "onnx": _version("onnx"), "onnxscript": _version("onnxscript")}
    signature = program.graph_signature
    described = {
        "options": options, "versions": versions,
        "inputs": [_value(value) for value in flat_inputs],
        "input_specs": [repr(spec) for spec in signature.input_specs],
        "output_specs": [repr(spec) for spec in signature.output_specs],
        "pytree": [str(program.call_spec.in_spec), str(program.call_spec.out_spec)],
        "ranges": sorted((str(symbol), str(bounds)) for symbol, bounds in program.range_constraints.items()),
    }
    digest.update(json.dumps(described, sort_keys=True).encode())
    _graph(program.graph_module, digest)
    for name, tensor in sorted({**program.state_dict, **program.constants}.items()):
        if not isinstance(tensor, torch.Tensor):
            return None
        digest.update(f"{name}{tensor.dtype}{tuple(tensor.shape)}{tuple(tensor.stride())}".encode())
        digest.update(cache_keys.tensor_bytes(tensor))
    return digest.hexdigest()


def _graph(module: torch.fx.GraphModule, digest) -> None:
    index = {}
    for position, node in enumerate(module.graph.nodes):
        index[node] = position
        digest.update(json.dumps([node.op, node.name, cache_keys.target_name(node.target),
                                  cache_keys.argument(node.args, index),
                                  cache_keys.argument(node.kwargs, index), _value(node.meta.get("val"))]).encode())
        if node.op == "get_attr":
            attribute = module
            for part in node.target.split("."):
                attribute = getattr(attribute, part)
            if isinstance(attribute, torch.fx.GraphModule):  # a torch.cond / map branch
                _graph(attribute, digest)
            elif isinstance(attribute, torch.Tensor):
                digest.update(cache_keys.tensor_bytes(attribute))


def _value(value):
    """A graph value or example input as JSON: tensors by dtype, shape (symbols by name) and device."""
    if isinstance(value, torch.Tensor):
        return [str(value.dtype), [str(size) for size in value.shape], str(value.device)]
    if isinstance(value, (list, tuple)):
        return [_value(v) for v in value]
    return repr(value)  # None, numbers, strings, SymInts (their expression)


def _paths(key_: str) -> tuple:
    folder = engine_cache.cache_dir("programs")
    return os.path.join(folder, key_ + ".json"), os.path.join(folder, key_ + ".ep")


def _pytree_specs(program: torch.export.ExportedProgram) -> tuple:
    return str(program.call_spec.in_spec), str(program.call_spec.out_spec)


def get(key_: str, exported: torch.export.ExportedProgram) -> Optional[Hit]:
    """The program stored under `key_`, checked as trtpack.load checks an .ep; None if missing or damaged, or if it
    reads back with other input/output types than `exported` (the model's) has: a type this process has not
    registered comes back as trtpack.load's placeholder type, which compile must not return."""
    summary_path, program_path = _paths(key_)
    try:
        with open(summary_path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    if not os.path.exists(program_path):  # evicted or removed by hand: the summary alone is of no use
        _remove(summary_path)
        return None
    try:
        stored = json.loads(text)
        if stored["key"] != key_:
            raise ValueError("the summary belongs to another key")
        program, engines = ep.read_program(program_path, verify=True)
        if len(engines) != len(stored["summary"]["regions"]):
            raise ValueError(f"{len(engines)} engines, the summary says {len(stored['summary']['regions'])}")
        hit = Hit(program, stored["summary"], stored["ranges"])
        if _pytree_specs(program) != _pytree_specs(exported):
            return None
    except (ValueError, KeyError, TypeError, TrtpackError) as error:
        engine_cache.report_damage([program_path, summary_path],
                                   str(error).splitlines()[0][:300] or type(error).__name__, what="program")
        return None
    engine_cache.touch([summary_path, program_path])
    return hit


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def put(key_: str, program: torch.export.ExportedProgram, summary: dict, ranges: str) -> None:
    """Stores the compiled program, then evicts beyond the cap. Never makes a compile fail: a disk error warns, a
    program trtpack cannot save as .ep is just not cached."""
    summary_path, program_path = _paths(key_)
    try:
        text = json.dumps({"key": key_, "summary": summary, "ranges": ranges})
    except (TypeError, ValueError) as error:  # a summary value JSON cannot hold: nothing is written
        log.info("the compiled program is not cached: %s", error)
        return
    try:
        os.makedirs(os.path.dirname(summary_path), exist_ok=True)
        artifacts.save(program, program_path)
        with atomic.atomic_path(summary_path) as temporary, open(temporary, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as error:
        warnings.warn(f"trtpack: could not write the program cache entry {program_path}: {error}")
        return
    except Exception as error:  # noqa: BLE001  trtpack or torch cannot write this program (e.g. an unregistered
        log.info("the compiled program is not cached: %s", error)  # namedtuple output): compile it every time
        return
    engine_cache.evict(engine_cache.max_bytes())
