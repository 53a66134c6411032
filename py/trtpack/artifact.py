"""Finds the engine records inside a program and writes files atomically: shared by save, load and inspect."""
import contextlib
import json
import os
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

    @property
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

    A crash at any point leaves the previous file intact; the temporary is removed on error, and temporaries
    left by killed savers (named with their process id) are removed after the next successful save.
    """
    folder = os.path.dirname(os.path.abspath(path))
    prefix = f".{os.path.basename(path)}.{os.getpid()}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp" + suffix, dir=folder)
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files; a saved program gets the usual permissions
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    _remove_orphans(folder, os.path.basename(path))


def _umask() -> int:
    try:
        with open("/proc/self/status") as f:  # read, not set: os.umask() would race with other threads
            return next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return 0o022


def _remove_orphans(folder: str, name: str) -> None:
    """Removes `.NAME.PID.*.tmp*` files whose saving process no longer exists (it was killed mid-save)."""
    for entry in os.listdir(folder):
        parts = entry[len(name) + 2:].split(".", 1) if entry.startswith(f".{name}.") else []
        if len(parts) != 2 or not parts[0].isdigit() or ".tmp" not in parts[1] or _alive(int(parts[0])):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(folder, entry))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
