"""save / load / inspect: compiled programs on disk, one module per format.

  ep.py      .ep   torch.export archive + manifest (checked by ep_check.py before torch reads it)
  pt2.py     .pt2  AOTInductor package + manifest (native code: loads only with trust_native_code=True)
  engine.py  .engine / .trt  plan bytes + `.json` sidecar
  program.py what they share: the engines in a program, LoadedProgram (what load returns), the program save writes
  manifest.py, atomic.py

A file's format is read from its bytes, never from its name (docs/SECURITY.md).
"""
import os
from typing import Optional

import torch

from trtpack import machine, record
from trtpack.artifacts import engine as engine_file, ep, ep_check, manifest, zip_layout
from trtpack.artifacts.files import open_regular
from trtpack.artifacts.program import LoadedProgram, program_to_save, validate
from trtpack.errors import FormatError, IncompatibleEngineError, TrtpackError, UntrustedCodeError
from trtpack.runtime import registration, selection
from trtpack.runtime.cuda_graphs import attach as cuda_graphs_of

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


def save(module, path, *, arg_inputs=None, kwarg_inputs=None, dynamic_shapes=None, output_format=None) -> None:
    """Saves what trtpack.compile (or trtpack.load) returned, or an ExportedProgram, to `path`, atomically.

    Args:
        module: the compiled or loaded module, or an ExportedProgram holding trtpack engines.
        path: `.ep` (ExportedProgram), `.pt2` (AOTInductor package) or `.engine`/`.trt` (plan + `path.json`).
        arg_inputs, kwarg_inputs: example inputs; needed only for a module trtpack did not compile. A compiled
            program is written as compiled, with its dynamic shapes: example inputs alone never re-export it.
        dynamic_shapes: export again with these ranges (a warning names any compiled dim they narrow).
        output_format: `exported_program`, `aot_inductor` or `engine`, overriding the suffix.
    Example:
        trtpack.save(trtpack.compile(model, (x,)), "model.ep")
    """
    path = os.fspath(path)
    fmt = _format_of(path, output_format)
    if fmt == "engine" and isinstance(module, LoadedProgram) and module.format == "engine":
        found = module.engines
    else:
        program = program_to_save(module, arg_inputs, kwarg_inputs, dynamic_shapes)
        found = validate(program)
    if fmt == "engine":
        if len(found) != 1:
            engine_names = ", ".join(e.name for e in found) or "none"
            raise TrtpackError(f"trtpack: a .engine file holds exactly one engine; this program has {len(found)} "
                               f"({engine_names}). Save it as .ep and run `trtpack extract FILE.ep --engine NAME "
                               "-o OUT.engine`.")
        return engine_file.write(found[0], path)
    if fmt == "exported_program":
        return ep.write(program, found, path)
    from trtpack.artifacts import pt2
    pt2.write(program, found, path)


def sniff(path: str) -> str:
    """The format of the file at `path`, from its bytes: "exported_program", "aot_inductor" or "engine"."""
    fd, size = open_regular(path)
    try:
        return _sniff_open(fd, size, path)
    finally:
        os.close(fd)


def _sniff_open(fd: int, size: int, path: str) -> str:
    if os.pread(fd, 4, 0) != b"PK\x03\x04":
        return "engine"  # anything else is only ever read as plan bytes checked against a sidecar record
    try:  # the checked reader, never a lenient one that would guess where a damaged archive's entries are
        entries = zip_layout.read_layout(fd, size)
    except zip_layout.LayoutError:
        return "exported_program"  # whose reader (ep_check) refuses it, saying what is wrong with its layout
    return "aot_inductor" if any("/data/aotinductor/" in e.name for e in entries) else "exported_program"


def _checked_manifest(path: str) -> tuple:
    """(format, manifest) of a .ep or .pt2, after the structural checks load runs before it reads anything: the zip
    layout, and for an .ep its entry names, payload configs, guards and symbolic expressions (ep_check); no CRC or
    plan digest, so the plans are never read."""
    fd, size = open_regular(path)
    try:
        kind = _sniff_open(fd, size, path)
        if kind == "exported_program":
            ep_check.check(fd, size, path, verify=False)
        return kind, (manifest.read_open(fd, size, path) if kind != "engine" else None)
    finally:
        os.close(fd)


def load(path, *, device=None, trust_native_code: bool = False, verify: bool = True,
         executor: Optional[str] = None, cuda_graphs=False) -> LoadedProgram:
    """Loads a .ep, .pt2 or .engine written by trtpack.save as a LoadedProgram (an nn.Module with .engines, .format).

    Every engine record is validated against its plan first (FormatError if damaged). Engines that cannot run on
    this machine warn once here; calling them raises IncompatibleEngineError unless the program was compiled with
    fallback=True, in which case the PyTorch reference runs instead.

    Args:
        path: the artifact. Its format is read from its bytes, whatever its name.
        device: where to put the program's buffers (e.g. "cuda:0"); default: where they were saved.
        trust_native_code: an AOTInductor package (.pt2) holds a compiled library that runs when it loads; it loads
            only with trust_native_code=True. Other formats never run code from the file.
        verify: check every plan against its record's digest (plan_xxh3, or plan_sha256 in records older than
            format 1.1) and every other archive entry's CRC-32 (the default);
            False skips those reads of every byte, for speed, when the file is known to be intact. The archive's
            structure and the strings torch would evaluate are checked either way.
        executor: which TensorRT executor runs the program's engines on CUDA: "cpp" (libtorchtrt_runtime.so's, in a
            library built with it; the default there) or "python"; default TRTPACK_EXECUTOR, else the process's.
            The choice is the process's (trtpack.runtime.selection): calling this program switches back to it.
            IncompatibleEngineError when it cannot run here (no such library, no CUDA), with what to do.
        cuda_graphs: True (or the number of input shapes to keep; default trtpack.runtime.cuda_graphs.
            DEFAULT_MAX_GRAPHS) to capture the whole program in a CUDA graph once per input shape and replay it.
            Outputs are fresh tensors; .to() and load_state_dict drop the graphs. Where capture is impossible (no
            CUDA, inputs on the CPU, data-dependent shapes, an op that cannot be captured) the program runs eagerly
            and says why once. `program.cuda_graphs.info()` counts captures and replays.
    """
    if executor is not None:
        selection.use(executor)
    program = _read(os.fspath(path), device, trust_native_code, verify)
    program.executor = executor
    return cuda_graphs_of(program, cuda_graphs)


def _read(path: str, device, trust_native_code: bool, verify: bool) -> LoadedProgram:
    kind = sniff(path)
    if device is not None:
        device = torch.device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise IncompatibleEngineError(f"trtpack: load(device={str(device)!r}) but this machine has no CUDA "
                                          "device; load without device= (fallback programs run on CPU)")
    if kind == "engine":
        return engine_file.read(path, device, verify=verify)
    if kind == "exported_program":
        return ep.read(path, device, verify=verify)
    if not trust_native_code:
        raise UntrustedCodeError(f"trtpack: {path!r} is an AOTInductor package: loading it runs the compiled library "
                                 "inside it. Load it with trust_native_code=True (CLI: --trust_native_code) only if "
                                 "you trust where it came from; `trtpack inspect` reads it without running it.")
    from trtpack.artifacts import pt2
    return pt2.read(path, device, verify=verify)


def inspect(path, *, device=None) -> dict:
    """Describes an artifact from its manifest or sidecar alone (no GPU, no program loaded, no code run): format,
    the program's inputs, outputs and ranges, every engine and whether it can run here (on `device`, default the
    current CUDA device if any). A .ep or .pt2 first passes the structural checks load runs (FormatError where load
    would refuse the file's structure); plan digests and CRCs are load's alone."""
    path = os.fspath(path)
    kind, found = _checked_manifest(path)
    info = {"path": path, "format": kind, "size": os.path.getsize(path), "trtpack_version": None}
    if kind == "engine":
        meta = engine_file.read_sidecar(path)
        pairs, program = [(meta, False)], None
    else:
        pairs, program = found.engines, found.program
    if program is not None:
        info["inputs"] = [spec["name"] for spec in program["inputs"]]
        info["outputs"] = [spec["name"] for spec in program["outputs"]]
        info["symbols"] = program["symbols"]
        info["dim_names"] = program.get("dim_names", {})  # manifest 1.2: the user's torch.export.Dim names
    here = machine.describe(device)
    info["engines"] = []
    for meta, fallback in pairs:
        rec = record.decode_meta(meta)
        info["trtpack_version"] = rec["trtpack_version"]
        info["torch_version"] = rec["torch_version"]
        verdict = record.compatibility(rec, here)
        digest = {k: rec[k] for k in ("plan_sha256", "plan_xxh3") if k in rec}  # load checks plan_xxh3 from 1.1 on
        info["engines"].append({**{k: rec[k] for k in ("name", "backend", "backend_version", "targets", "inputs",
                                                       "outputs", "symbols", "plan_size")}, **digest,
                                "dim_names": _record_dim_names(rec, program),
                                "fallback": fallback, "usable_here": verdict["usable"], "reason": verdict["reason"]})
    if kind == "engine" and info["size"] != info["engines"][0]["plan_size"]:
        raise FormatError(f"trtpack: {path!r} is {info['size']} bytes but its record says plan_size "
                          f"{info['engines'][0]['plan_size']}: the plan and its sidecar do not belong together.")
    info["fallback"] = bool(pairs) and all(f for _, f in pairs)
    info["ops"] = registration.active().as_dict()
    # an AOTInductor package calls the ops from C++: it loads only beside a libtorchtrt_runtime.so for this torch
    info["runs_here"] = all(e["usable_here"] or e["fallback"] for e in info["engines"]) and not (
        kind == "aot_inductor" and info["engines"] and info["ops"]["kind"] != "native")
    return info


def _record_dim_names(rec: dict, program) -> dict:
    """{record symbol: the user's Dim name} for the engine inputs that are program inputs: the record names its
    symbols s0, s1, ... itself, the program knows which user dim each of those inputs' dims is."""
    given = (program or {}).get("dim_names") or {}
    shapes = {spec["name"]: spec["shape"] for spec in (program or {}).get("inputs", []) if spec.get("shape")}
    found = {}
    for spec in rec["inputs"]:
        for dim, program_dim in zip(spec["shape"], shapes.get(spec["name"], ())):
            if isinstance(dim, str) and dim in rec["symbols"] and program_dim in given:
                found.setdefault(dim, given[program_dim])
    return found


__all__ = ["FORMATS", "LoadedProgram", "inspect", "load", "save", "sniff"]
