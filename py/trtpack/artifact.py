"""Finds the engine records inside a program and writes files atomically: shared by save, load and inspect."""
import contextlib
import functools
import json
import os
import shutil
import tempfile
from dataclasses import dataclass

import torch

from trtpack import record
from trtpack.errors import FormatError

EXECUTE = torch.ops.trtpack.execute_engine.default
USABLE = torch.ops.trtpack.engine_usable.default
MANIFEST = "trtpack/manifest.json"
MANIFEST_FORMAT = "trtpack.artifact"
MANIFEST_VERSION = [1, 0]


@dataclass
class Engine:
    name: str
    meta: str          # the record's JSON, as carried by the op
    plan: torch.Tensor  # 1-D uint8
    fallback: bool      # guarded by engine_usable + a PyTorch reference branch

    @functools.cached_property
    def record(self) -> dict:
        return record.decode_meta(self.meta)


def _graph_tensors(ep: torch.export.ExportedProgram) -> dict:
    """placeholder name -> tensor, for lifted parameters, buffers and constants."""
    sig = ep.graph_signature
    found = {}
    for name, target in {**sig.inputs_to_parameters, **sig.inputs_to_buffers}.items():
        found[name] = ep.state_dict.get(target, ep.constants.get(target))
    for name, target in sig.inputs_to_lifted_tensor_constants.items():
        found[name] = ep.constants[target]
    return found


def engines(program) -> list:
    """Every engine of an ExportedProgram or GraphModule, in graph order, each once."""
    if isinstance(program, torch.export.ExportedProgram):
        graph, tensors = program.graph, _graph_tensors(program)
    else:
        graph = program.graph
        tensors = {n.name: _get_attr(program, n.target) for n in graph.nodes if n.op == "get_attr"}
    by_meta = {}
    for node in graph.nodes:
        if node.op != "call_function" or node.target not in (EXECUTE, USABLE):
            continue
        _, plan_node, meta = node.args
        if meta not in by_meta:
            plan = tensors.get(plan_node.name)
            if plan is None:
                raise FormatError(f"trtpack: engine plan argument {plan_node.name!r} is not a stored tensor; "
                                  "the program was not produced by trtpack.compile. Recompile it.")
            by_meta[meta] = Engine(record.decode_meta(meta)["name"], meta, plan, fallback=False)
        if node.target is USABLE:
            by_meta[meta].fallback = True
    return list(by_meta.values())


def _get_attr(module, target: str):
    for part in target.split("."):
        module = getattr(module, part)
    return module


def validate(program, verify_hash: bool = False) -> list:
    """Checks every engine record against its plan; returns the engines."""
    found = engines(program)
    for engine in found:
        record.check_plan(engine.meta, engine.plan, verify_hash=verify_hash)
    return found


def manifest(found: list) -> str:
    return json.dumps({"format": MANIFEST_FORMAT, "format_version": MANIFEST_VERSION,
                       "engines": [{"meta": e.meta, "fallback": e.fallback} for e in found]},
                      sort_keys=True, separators=(",", ":"))


def read_manifest(text: str) -> list:
    try:
        doc = json.loads(text)
        if doc.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"format is {doc.get('format')!r}, not {MANIFEST_FORMAT!r}")
        if doc["format_version"][0] != MANIFEST_VERSION[0]:
            raise ValueError(f"format_version {doc['format_version']} is newer than this trtpack's "
                             f"{MANIFEST_VERSION}: upgrade trtpack")
        return [(entry["meta"], bool(entry["fallback"])) for entry in doc["engines"]]
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise FormatError(f"trtpack: the artifact's {MANIFEST} is malformed ({e}). Re-save it with trtpack.save.") from e


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = ""):
    """Yields a temporary path beside `path`; renames it over `path` only if the block finishes.

    The temporary lives in a private folder next to the target (same filesystem, so the rename is atomic) and
    keeps the target's name (torch names an archive's root folder after the file). A crash at any point leaves
    the previous file intact; the temporary is removed on error.
    """
    path = os.path.abspath(path)
    _remove_stale_temporaries(path)
    folder = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.{os.getpid()}.", suffix=".tmp",
                              dir=os.path.dirname(path))
    tmp = os.path.join(folder, os.path.splitext(os.path.basename(path))[0] + (suffix or os.path.splitext(path)[1]))
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _remove_stale_temporaries(path: str) -> None:
    """Removes temporaries that saves of `path` killed mid-write left behind (their process is gone)."""
    prefix = f".{os.path.basename(path)}."
    for entry in os.listdir(os.path.dirname(path)):
        if not (entry.startswith(prefix) and entry.endswith(".tmp")):
            continue
        pid = entry[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(os.path.join(os.path.dirname(path), entry), ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
