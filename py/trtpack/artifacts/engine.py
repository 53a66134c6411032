"""Stand-alone .engine files: the plan bytes exactly as built, and the engine record beside them (`path + ".json"`)."""
import os
import stat

import torch

from trtpack import names, record
from trtpack.artifacts.atomic import atomic_path
from trtpack.artifacts.program import Engine, LoadedProgram
from trtpack.errors import FormatError, TrtpackError

MAX_SIDECAR_BYTES = 16 << 20  # a record is a few KiB; refuse to read a huge file as one


def write(engine: Engine, path: str) -> None:
    if engine.plan is None:
        raise TrtpackError(f"trtpack: engine {engine.name!r} has no plan bytes here (a .pt2 keeps them inside its "
                           "package); save or extract it from the .ep instead.")
    with atomic_path(path) as tmp:
        engine.plan.detach().cpu().contiguous().numpy().tofile(tmp)
    with atomic_path(path + ".json") as tmp:
        with open(tmp, "w") as f:
            f.write(engine.meta)


def read_sidecar(path: str) -> str:
    """The record text of `path`'s sidecar, size-checked before it is read."""
    sidecar = path + ".json"
    try:
        info = os.stat(sidecar)
    except FileNotFoundError:
        raise FormatError(f"trtpack: {path!r} has no sidecar {sidecar!r} with its record; an engine file needs it to "
                          "know its inputs. Re-extract it with `trtpack extract` or trtpack.save.") from None
    if not stat.S_ISREG(info.st_mode):
        raise FormatError(f"trtpack: the sidecar {sidecar!r} is not a regular file; re-extract it.")
    if info.st_size > MAX_SIDECAR_BYTES:
        raise FormatError(f"trtpack: the sidecar {sidecar!r} is {info.st_size} bytes; an engine record is at most "
                          f"{MAX_SIDECAR_BYTES}. It is not a trtpack sidecar: re-extract it.")
    with open(sidecar, "rb") as f:
        raw = f.read(MAX_SIDECAR_BYTES + 1)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"trtpack: the sidecar {sidecar!r} is not UTF-8 JSON ({e.reason} at byte {e.start}); "
                          "re-extract it with `trtpack extract` or trtpack.save.") from e


class EngineModule(torch.nn.Module):
    """One plan as a module: takes the record's inputs, by position or by name."""

    def __init__(self, meta: str, plan: torch.Tensor):
        super().__init__()
        self.meta = meta
        self.register_buffer("plan", plan)
        self.record = record.decode_meta(meta)
        self.input_names = [spec["name"] for spec in self.record["inputs"]]

    def forward(self, *args, **kwargs):
        inputs = list(args) + [kwargs.pop(name) for name in self.input_names[len(args):] if name in kwargs]
        if kwargs or len(inputs) != len(self.input_names):
            unknown = f"; unknown keywords {sorted(kwargs)}" if kwargs else ""
            raise TrtpackError(f"trtpack: engine {self.record['name']!r} takes {len(self.input_names)} inputs "
                               f"({', '.join(self.input_names)}), got {len(args)} positional and "
                               f"{len(inputs) - len(args)} by name{unknown}")
        outputs = torch.ops.trtpack.execute_engine(inputs, self.plan, self.meta)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


def read(path: str, device=None) -> LoadedProgram:
    meta = read_sidecar(path)
    size, declared = os.path.getsize(path), record.decode_meta(meta)["plan_size"]
    if size != declared:  # before mapping anything
        raise FormatError(f"trtpack: {path!r} is {size} bytes but its record says plan_size {declared}: the plan and "
                          "its sidecar do not belong together. Re-extract them with `trtpack extract` or trtpack.save.")
    plan = torch.from_file(path, shared=False, size=size, dtype=torch.uint8)
    record.check_plan(meta, plan)
    module = EngineModule(meta, plan)
    if device is not None:
        module.to(device)
    engine = Engine(module.record["name"], meta, module.plan, fallback=False)
    return LoadedProgram("engine", module, [engine], names.record_ranges(module.record), module.record["inputs"])
