"""Stand-alone .engine files: the plan bytes exactly as built, and the engine record beside them (`path + ".json"`).

The two files change together (atomic.write_pair: one commit folder renamed into place, then each file moved over
its target); a reader takes each file from the commit folder while one is there (docs/FORMAT.md §9)."""
import os

import torch

from trtpack import names, record
from trtpack.artifacts import atomic
from trtpack.artifacts.files import open_regular
from trtpack.artifacts.program import Engine, LoadedProgram
from trtpack.errors import FormatError, TrtpackError

MAX_SIDECAR_BYTES = 16 << 20  # a record is a few KiB; refuse to read a huge file as one
# How a plan begins: TensorRT-RTX's magic (docs/FORMAT.md §6), and full TensorRT's (unverified, like that backend).
PLAN_MAGICS = (b"vtrt", b"ftrt")


def write(engine: Engine, path: str) -> None:
    if engine.plan is None:
        raise TrtpackError(f"trtpack: engine {engine.name!r} has no plan bytes here (a .pt2 keeps them inside its "
                           "package); save or extract it from the .ep instead.")

    def write_files(plan_path, sidecar_path):
        # Python's own writes, not numpy's tofile: a failed write then carries its errno (ENOSPC, EDQUOT), which
        # atomic.no_space_is_clear turns into a TrtpackError whatever the file system reports as free.
        with open(plan_path, "wb") as f:
            f.write(memoryview(engine.plan.detach().cpu().contiguous().numpy()))
        with open(sidecar_path, "w") as f:
            f.write(engine.meta)

    atomic.write_pair(path, write_files)


def _read_text(sidecar: str, shown: str) -> str:
    fd, size = open_regular(sidecar, "sidecar")
    try:
        if size > MAX_SIDECAR_BYTES:
            raise FormatError(f"trtpack: the sidecar {shown!r} is {size} bytes; an engine record is at most "
                              f"{MAX_SIDECAR_BYTES}. It is not a trtpack sidecar: re-extract it.")
        raw = os.pread(fd, MAX_SIDECAR_BYTES + 1, 0)
    finally:
        os.close(fd)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"trtpack: the sidecar {shown!r} is not UTF-8 JSON ({e.reason} at byte {e.start}); "
                          "re-extract it with `trtpack extract` or trtpack.save.") from e


def _pair(path: str) -> tuple:
    plan, sidecar = atomic.current_pair(path)
    if not os.path.lexists(sidecar) and not _starts_like_a_plan(plan):
        raise FormatError(f"trtpack: {path!r} is not a trtpack artifact: it is neither a zip archive (.ep, .pt2) nor "
                          "a TensorRT plan. Give the path of a file written by trtpack.save or `trtpack export` "
                          "(.ep, .pt2, or a .engine with its .json sidecar).")
    if not os.path.lexists(sidecar):
        raise FormatError(f"trtpack: {path!r} has no sidecar {path + '.json'!r} with its record; an engine file needs "
                          "it to know its inputs. Re-extract it with `trtpack extract` or trtpack.save.")
    return plan, sidecar


def _starts_like_a_plan(path: str) -> bool:
    """False only for a file that was read and does not begin like a TensorRT plan."""
    try:
        fd, _ = open_regular(path, "plan")
    except TrtpackError:
        return True  # gone meanwhile, or unreadable: the caller's own message covers it
    try:
        return os.pread(fd, 4, 0) in PLAN_MAGICS
    finally:
        os.close(fd)


def read_sidecar(path: str) -> str:
    """The record text of `path`'s sidecar (of the newest committed pair), size-checked before it is read."""
    for attempt in range(3):  # a concurrent save may move the file we picked out of its commit folder
        plan, sidecar = _pair(path)
        try:
            return _read_text(sidecar, path + ".json")
        except TrtpackError:
            if attempt == 2 or os.path.exists(sidecar):
                raise
    raise AssertionError("unreachable")


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


def read(path: str, device=None, verify: bool = True) -> LoadedProgram:
    for attempt in range(3):  # a concurrent save may move the files we picked out of its commit folder
        plan_path, sidecar = _pair(path)
        try:
            meta = _read_text(sidecar, path + ".json")
            fd, size = open_regular(plan_path, "plan")
            break
        except TrtpackError:
            if attempt == 2 or (os.path.exists(sidecar) and os.path.exists(plan_path)):
                raise
    try:
        rec = record.decode_meta(meta)
        if size != rec["plan_size"]:  # before reading or mapping anything
            raise FormatError(f"trtpack: {path!r} is {size} bytes but its record says plan_size {rec['plan_size']}: "
                              "the plan and its sidecar do not belong together. Re-extract them with `trtpack "
                              "extract` or trtpack.save.")
        try:  # a private mapping: only the pages read here (the header) are paged in
            plan = torch.from_file(f"/proc/self/fd/{fd}" if os.path.isdir("/proc/self/fd") else plan_path,
                                   shared=False, size=size, dtype=torch.uint8)
        except RuntimeError as e:
            raise TrtpackError(f"trtpack: cannot map the {size}-byte plan {path!r} into memory "
                               f"({str(e).splitlines()[0][:160]}); free memory or address space and load it "
                               "again.") from None
        record.check_plan(meta, plan)  # size and the 64-byte header
        if verify:
            _check_digest(fd, meta, rec, path)  # streamed through the page cache, not through the mapping
    finally:
        os.close(fd)
    module = EngineModule(meta, plan)
    if device is not None:
        module.to(device)
    engine = Engine(module.record["name"], meta, module.plan, fallback=False)
    return LoadedProgram("engine", module, [engine], names.record_ranges(module.record), module.record["inputs"])


def _check_digest(fd: int, meta: str, rec: dict, path: str) -> None:
    """The record's digest rule (core/: PlanDigest) over the plan file, streamed through the page cache."""
    try:
        record.check_plan_file(meta, fd)
    except FormatError as e:
        error = FormatError(f"trtpack: {path!r}: engine {rec['name']!r}: {e} (the plan bytes changed after it was "
                            "saved: re-extract or re-copy it; load(..., verify=False) skips this check).")
        error.field = e.field
        raise error from None
