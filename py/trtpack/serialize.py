"""save / load / inspect: compiled programs on disk as .ep, .pt2 or .engine (+ .json sidecar)."""
import os
import warnings
import zipfile
import zlib

import torch

from trtpack import archive_guard, artifact, guard, machine, record
from trtpack.errors import FormatError, IncompatibleEngineError, TrtpackError

MAX_SIDECAR_BYTES = 16 << 20  # a record is a few KiB; refuse to read a huge file as one
FORMATS = {".ep": "exported_program", ".pt2": "aot_inductor", ".engine": "engine", ".trt": "engine"}


def _format_of(path: str, output_format) -> str:
    if output_format:
        if output_format not in set(FORMATS.values()):
            raise TrtpackError(f"trtpack: unknown output_format {output_format!r}; "
                               f"use one of {sorted(set(FORMATS.values()))}")
        return output_format
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in FORMATS:
        raise TrtpackError(f"trtpack: cannot tell the format of {path!r} from its suffix; name it "
                           f"{', '.join(FORMATS)} or pass output_format=")
    return FORMATS[suffix]


def exported_program(module, arg_inputs=None, kwarg_inputs=None, dynamic_shapes=None) -> torch.export.ExportedProgram:
    """The ExportedProgram to save: the one compile() recorded, or a re-export with the given inputs."""
    if isinstance(module, torch.export.ExportedProgram):
        return module
    program = getattr(module, "_trtpack_program", None)
    if program is not None and arg_inputs is None and kwarg_inputs is None and dynamic_shapes is None:
        return program
    if arg_inputs is None and kwarg_inputs is None:
        raise TrtpackError("trtpack: save() needs arg_inputs (and dynamic_shapes) to export a module that "
                           "trtpack.compile did not return. Pass the example inputs you compiled with.")
    return torch.export.export(module, tuple(arg_inputs or ()), kwargs=kwarg_inputs, dynamic_shapes=dynamic_shapes)


def save(module, path, *, arg_inputs=None, kwarg_inputs=None, dynamic_shapes=None, output_format=None) -> None:
    """Saves what trtpack.compile returned (or an ExportedProgram) to `path`, atomically.

    Args:
        module: the compiled module, or an ExportedProgram holding trtpack engines.
        path: `.ep` (ExportedProgram), `.pt2` (AOTInductor package) or `.engine`/`.trt` (plan + `path.json`).
        arg_inputs, kwarg_inputs, dynamic_shapes: re-export with these instead of what compile recorded.
        output_format: `exported_program`, `aot_inductor` or `engine`, overriding the suffix.
    Example:
        trtpack.save(trtpack.compile(model, (x,)), "model.ep")
    """
    path = os.fspath(path)
    fmt = _format_of(path, output_format)
    program = exported_program(module, arg_inputs, kwarg_inputs, dynamic_shapes)
    found = artifact.validate(program)
    if fmt == "engine":
        if len(found) != 1:
            names = ", ".join(e.name for e in found) or "none"
            raise TrtpackError(f"trtpack: a .engine file holds exactly one engine; this program has {len(found)} "
                               f"({names}). Save it as .ep and run `trtpack extract FILE.ep --engine NAME -o OUT.engine`.")
        return save_engine(found[0], path)
    extra = {artifact.MANIFEST: artifact.manifest(found)}
    if fmt == "exported_program":
        with artifact.atomic_path(path, ".pt2") as tmp:
            torch.export.save(program, tmp, extra_files=extra)
    else:
        from trtpack import aoti
        aoti.package(program, path, extra_files=extra)


def save_engine(engine: "artifact.Engine", path: str) -> None:
    """Writes the plan bytes exactly as built, and the record JSON beside it (`path + '.json'`)."""
    with artifact.atomic_path(path) as tmp:
        engine.plan.detach().cpu().contiguous().numpy().tofile(tmp)
    with artifact.atomic_path(path + ".json") as tmp:
        with open(tmp, "w") as f:
            f.write(engine.meta)


def _kind(path: str) -> str:
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise TrtpackError(f"trtpack: cannot read {path!r}: {e.strerror}") from e
    if head != b"PK\x03\x04":
        return "engine"
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError, NotImplementedError) as e:
        raise FormatError(f"trtpack: {path!r} looks like a zip archive but is damaged ({type(e).__name__}: "
                          f"{str(e)[:200]}); re-save it") from e
    return "aot_inductor" if any("/data/aotinductor/" in n for n in names) else "exported_program"


class EngineCall(torch.nn.Module):
    """A stand-alone .engine: runs the plan on tensors matching the sidecar's inputs."""

    def __init__(self, meta: str, plan: torch.Tensor):
        super().__init__()
        self.meta = meta
        self.register_buffer("plan", plan)
        self.record = record.decode_meta(meta)
        self.ranges = _symbols_text(self.record)

    def forward(self, *inputs):
        want = len(self.record["inputs"])
        if len(inputs) != want:
            raise TrtpackError(f"trtpack: engine {self.record['name']!r} takes {want} inputs, got {len(inputs)}")
        outputs = guard.call(torch.ops.trtpack.execute_engine, (list(inputs), self.plan, self.meta), {},
                             self.ranges)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


def _symbols_text(rec: dict) -> str:
    return ", ".join(f"{k} in [{v['min']}, {v['max']}]" for k, v in rec["symbols"].items()) or "all sizes static"


class Loaded(torch.nn.Module):
    """A loaded .ep program: validated records; engine errors surface as IncompatibleEngineError."""

    def __init__(self, program: torch.export.ExportedProgram, engines: list, device=None):
        super().__init__()
        self.program = program
        self._trtpack_program = program  # save() writes it again as is
        self.engines = engines
        self.module = program.module()
        self.ranges = guard.ranges_text(program)
        if device is not None:
            self.module.to(device)

    def forward(self, *args, **kwargs):
        return guard.call(self.module, args, kwargs, self.ranges)


class Pt2Program:
    """A loaded .pt2: AOTInductor's runner, with engine refusals raised as IncompatibleEngineError."""

    def __init__(self, runner, engines: list):
        self.runner = runner
        self.engines = engines
        self.ranges = ", ".join(_symbols_text(e.record) for e in engines)

    def __call__(self, *args, **kwargs):
        return guard.call(self.runner, args, kwargs, self.ranges)


def load(path, *, device=None):
    """Loads a .ep, .pt2 or .engine written by trtpack.save into a callable module.

    Every engine record is validated against its plan first (FormatError if damaged). Engines that cannot
    run on this machine warn once here; calling them raises IncompatibleEngineError unless the program
    was compiled with fallback=True, in which case the PyTorch reference runs instead.
    """
    path = os.fspath(path)
    kind = _kind(path)
    if device is not None:
        device = torch.device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise IncompatibleEngineError(f"trtpack: load(device={str(device)!r}) but this machine has no CUDA "
                                          "device; load without device= (fallback programs run on CPU)")
    if kind == "engine":
        return load_engine(path)
    if kind == "aot_inductor":
        if path.lower().endswith(".ep"):  # an .ep never runs native code; a .pt2 does by design (docs/SECURITY.md)
            raise FormatError(f"trtpack: {path!r} is named .ep but holds an AOTInductor package, whose compiled "
                              "library would run on load. Rename it .pt2 if you built it and trust it.")
        from trtpack import aoti
        metas = _manifest_engines(path)
        found = [artifact.Engine(record.decode_meta(meta)["name"], meta, None, fallback) for meta, fallback in metas]
        _warn_version_skew(found)
        _warn_unusable(found, device)
        return Pt2Program(aoti.load(path, device=device), found)
    archive_guard.check(path)
    try:
        with open(path, "rb") as f:  # a file object: torch warns about any path not ending in .pt2
            program = torch.export.load(f)
        found = artifact.validate(program)
    except TrtpackError:
        raise
    except Exception as e:  # torch's reader raises many types for a damaged archive; all mean the same here
        raise FormatError(f"trtpack: {path!r} is not a readable ExportedProgram archive ({type(e).__name__}: "
                          f"{str(e)[:300]}). Re-save it with trtpack.save.") from e
    _warn_version_skew(found)
    _warn_unusable(found, device)
    return Loaded(program, found, device)


def _warn_version_skew(found: list) -> None:
    from trtpack import __version__
    built = {e.record["trtpack_version"] for e in found}
    skewed = sorted(v for v in built if v.split(".")[:2] != __version__.split(".")[:2])
    if skewed:
        warnings.warn(f"trtpack: this program was saved by trtpack {', '.join(skewed)}; this is trtpack "
                      f"{__version__}. It loads, but re-save it with this version to silence this warning.",
                      stacklevel=3)


def _warn_unusable(found: list, device) -> None:
    here = machine.describe(device)
    for engine in found:
        verdict = record.compatibility(engine.record, here)
        if not verdict["usable"]:
            then = "its PyTorch fallback will run" if engine.fallback else "calling it raises IncompatibleEngineError"
            warnings.warn(f"trtpack: engine {engine.name!r} cannot run here ({verdict['reason']}); {then}.",
                          stacklevel=3)


def load_engine(path: str) -> EngineCall:
    sidecar = path + ".json"
    if not os.path.exists(sidecar):
        raise FormatError(f"trtpack: {path!r} has no sidecar {sidecar!r} with its record; an engine file needs "
                          "it to know its inputs. Re-extract it with `trtpack extract` or trtpack.save.")
    if os.path.getsize(sidecar) > MAX_SIDECAR_BYTES:
        raise FormatError(f"trtpack: the sidecar {sidecar!r} is {os.path.getsize(sidecar)} bytes; an engine record "
                          f"is at most {MAX_SIDECAR_BYTES}. It is not a trtpack sidecar: re-extract it.")
    with open(sidecar, "rb") as f:
        raw = f.read(MAX_SIDECAR_BYTES + 1)
    try:
        meta = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"trtpack: the sidecar {sidecar!r} is not UTF-8 JSON ({e.reason} at byte {e.start}); "
                          "re-extract it with `trtpack extract` or trtpack.save.") from e
    plan = torch.from_file(path, shared=False, size=os.path.getsize(path), dtype=torch.uint8)
    record.check_plan(meta, plan)
    return EngineCall(meta, plan)


def _manifest_engines(path: str) -> list:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise FormatError(f"trtpack: {path!r} is a damaged archive ({e}); re-save it with trtpack.save") from e
    with archive as z:
        entry = [n for n in z.namelist() if n.endswith("/extra/" + artifact.MANIFEST)]
        if not entry:
            raise FormatError(f"trtpack: {path!r} is an AOTInductor package without trtpack's manifest; "
                              "it was not written by trtpack.save. Re-save it with trtpack.save(module, 'x.pt2').")
        if z.getinfo(entry[0]).file_size > MAX_SIDECAR_BYTES:
            raise FormatError(f"trtpack: {path!r}: {artifact.MANIFEST} is too large to be trtpack's manifest")
        try:
            text = z.read(entry[0]).decode("utf-8")
        except (zipfile.BadZipFile, ValueError, EOFError, OSError, zlib.error) as e:  # CRC, bad UTF-8...
            raise FormatError(f"trtpack: {path!r}: cannot read {artifact.MANIFEST} ({type(e).__name__}: "
                              f"{str(e)[:200]}); re-save the program with trtpack.save") from e
        return artifact.read_manifest(text)


def inspect(path, *, device=None) -> dict:
    """Describes an artifact without a GPU: format, graph I/O, every engine and whether it can run here
    (on `device`, default the current CUDA device if any)."""
    path = os.fspath(path)
    kind = _kind(path)
    info = {"path": path, "format": kind, "size": os.path.getsize(path), "trtpack_version": None}
    if kind == "engine":
        found = [load_engine(path)]
        pairs = [(e.meta, False) for e in found]
    elif kind == "aot_inductor":
        pairs = _manifest_engines(path)
    else:
        loaded = load_quiet(path)
        program = loaded.program
        info["inputs"] = [str(s.arg) for s in program.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
        info["outputs"] = [str(s.arg) for s in program.graph_signature.output_specs if s.kind.name == "USER_OUTPUT"]
        info["symbols"] = {str(sym): [_bound(r.lower), _bound(r.upper)] for sym, r in program.range_constraints.items()}
        pairs = [(e.meta, e.fallback) for e in loaded.engines]
    here = machine.describe(device)
    info["engines"] = []
    for meta, fallback in pairs:
        rec = record.decode_meta(meta)
        info["trtpack_version"] = rec["trtpack_version"]
        info["torch_version"] = rec["torch_version"]
        verdict = record.compatibility(rec, here)
        info["engines"].append({**{k: rec[k] for k in ("name", "backend", "backend_version", "targets", "inputs",
                                                       "outputs", "symbols", "plan_size", "plan_sha256")},
                                "fallback": fallback, "usable_here": verdict["usable"], "reason": verdict["reason"]})
    info["fallback"] = bool(pairs) and all(f for _, f in pairs)
    info["runs_here"] = all(e["usable_here"] or e["fallback"] for e in info["engines"])
    return info


def _bound(value):
    return int(value) if value.is_finite else None


def load_quiet(path: str) -> Loaded:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load(path)
