"""save / load / inspect: compiled programs on disk, one module per format.

  ep.py      .ep   torch.export archive + manifest (checked by ep_check.py before torch reads it)
  pt2.py     .pt2  AOTInductor package + manifest (native code: loads only with trust_native_code=True)
  engine.py  .engine / .trt  plan bytes + `.json` sidecar
  program.py what they share: the engines in a program, LoadedProgram (what load returns), the program save writes
  manifest.py, atomic.py

A file's format is read from its bytes, never from its name (docs/SECURITY.md).
"""
import os
import stat
import zipfile
from typing import Optional

import torch

from trtpack import machine, record
from trtpack.artifacts import engine as engine_file, ep, manifest
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
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise FormatError(f"trtpack: {path!r} is not a regular file; give the path of a saved artifact.")
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise TrtpackError(f"trtpack: cannot read {path!r}: {e.strerror}") from e
    if head != b"PK\x03\x04":
        return "engine"  # anything else is only ever read as plan bytes checked against a sidecar record
    try:
        with zipfile.ZipFile(path) as z:
            entry_names = z.namelist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError, NotImplementedError) as e:
        raise FormatError(f"trtpack: {path!r} looks like a zip archive but is damaged ({type(e).__name__}: "
                          f"{str(e)[:200]}); re-save it") from e
    return "aot_inductor" if any("/data/aotinductor/" in n for n in entry_names) else "exported_program"


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
    current CUDA device if any)."""
    path = os.fspath(path)
    kind = sniff(path)
    info = {"path": path, "format": kind, "size": os.path.getsize(path), "trtpack_version": None}
    if kind == "engine":
        meta = engine_file.read_sidecar(path)
        pairs, program = [(meta, False)], None
    else:
        found = manifest.read(path)
        pairs, program = found.engines, found.program
    if program is not None:
        info["inputs"] = [spec["name"] for spec in program["inputs"]]
        info["outputs"] = [spec["name"] for spec in program["outputs"]]
        info["symbols"] = program["symbols"]
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
    if kind == "engine" and info["size"] != info["engines"][0]["plan_size"]:
        raise FormatError(f"trtpack: {path!r} is {info['size']} bytes but its record says plan_size "
                          f"{info['engines'][0]['plan_size']}: the plan and its sidecar do not belong together.")
    info["fallback"] = bool(pairs) and all(f for _, f in pairs)
    info["ops"] = registration.active().as_dict()
    # an AOTInductor package calls the ops from C++: it loads only beside a libtorchtrt_runtime.so for this torch
    info["runs_here"] = all(e["usable_here"] or e["fallback"] for e in info["engines"]) and not (
        kind == "aot_inductor" and info["engines"] and info["ops"]["kind"] != "native")
    return info


__all__ = ["FORMATS", "LoadedProgram", "inspect", "load", "save", "sniff"]
