"""ExportedProgram archives (.ep): torch.export's zip, with trtpack's manifest beside the program.

Before torch reads an archive, ep_check validates it against what trtpack writes (docs/SECURITY.md); torch then
reads the same open file, so what it reads is what was checked."""
import copy
import json
import os

import torch

from trtpack import names
from trtpack.artifacts import atomic, ep_check, manifest, pytree_types, zip_layout
from trtpack.artifacts.files import open_regular
from trtpack.artifacts.program import LoadedProgram, describe_program, validate, warn_unusable, warn_version_skew
from trtpack.errors import FormatError, TrtpackError
from trtpack.runtime import branches, input_check, short_path


class InferenceModule(torch.nn.Module):
    """Runs a loaded program under torch.no_grad(). Engines have no backward, and with grad enabled torch.cond
    traces both branches under a process-global FakeTensorMode on every call whenever a parameter requires grad,
    which fails when threads call at once (AssertionError, or SIGABRT: "one already exists")."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        with torch.no_grad():
            return self.module(*args, **kwargs)


def write(program: torch.export.ExportedProgram, found: list, path: str) -> None:
    program = _without_sample_inputs(program)
    _check_writable(program, path)
    extra = {manifest.ENTRY: manifest.encode(found, describe_program(program))}
    with atomic.atomic_path(path) as tmp:
        out = atomic.CheckedWriter(tmp)
        try:
            torch.export.save(program, out, extra_files=extra)
        finally:
            out.close()  # raises the first write error (e.g. ENOSPC), after torch's writer is done


def _without_sample_inputs(program: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """A shallow copy without example inputs: torch would store them as a pickle, which loading would unpickle."""
    if program.example_inputs is None:
        return program
    program = copy.copy(program)
    program._example_inputs = None
    return program


def _check_writable(program: torch.export.ExportedProgram, path: str) -> None:
    """Refuses, before writing, a program whose guards trtpack.load would refuse (ep_check's grammar)."""
    for guard in getattr(program, "_guards_code", None) or []:
        try:
            ep_check.check_grammar(guard, "guard", path)
        except FormatError as e:
            raise TrtpackError(f"trtpack: cannot save this program as .ep: its input guard {guard[:80]!r} is outside "
                               "the grammar trtpack.load accepts (docs/SECURITY.md); please report it.") from e


def _crc_check_the_rest(checked: ep_check.Checked, program, found: list, path: str) -> None:
    plans = {id(engine.plan) for engine in found}
    verified = {key for key, tensor in {**program.state_dict, **program.constants}.items() if id(tensor) in plans}
    try:
        checked.check_crcs_except(verified)
    except zip_layout.LayoutError as e:
        raise ep_check.refuse(path, str(e)) from None


def read_program(path: str, verify: bool = True) -> tuple:
    """(ExportedProgram, engines) of the .ep at `path`, checked as `read` checks it, without warnings or a module."""
    fd, size = open_regular(path)
    try:
        checked = ep_check.check(fd, size, path, verify=verify)
        try:
            # the checked file itself, whatever happens to the path; model-defined pytree types get placeholders
            with pytree_types.placeholders(checked.specs), os.fdopen(os.dup(fd), "rb") as f:
                program = torch.export.load(f)
            found = validate(program, verify_hash=verify, path=path)
            if verify:  # plans were just checked by their record's digest, in memory; CRC-32 for the other bytes
                _crc_check_the_rest(checked, program, found, path)
            return program, found
        except TrtpackError:
            raise
        except Exception as e:  # torch's reader raises many types for a damaged archive; all mean the same here
            why = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
            saved_with = _saved_with(path)
            if saved_with and saved_with.split("+")[0] != torch.__version__.split("+")[0]:
                raise FormatError(
                    f"trtpack: {path!r} was saved with torch {saved_with} and torch {torch.__version__} cannot read it "
                    f"({why}). Load it under torch {saved_with}, or compile and save the model again under torch "
                    f"{torch.__version__}.") from e
            raise FormatError(f"trtpack: {path!r} is not a readable ExportedProgram archive ({why}).") from e
    finally:
        os.close(fd)


def _saved_with(path: str):
    """The torch version that saved an .ep, from its engine records; None when it has none or they can't be read."""
    try:
        metas = [meta for meta, _ in manifest.read(path).engines]
        return json.loads(metas[0])["torch_version"] if metas else None
    except (TrtpackError, ValueError, KeyError, TypeError):
        return None


def read(path: str, device=None, verify: bool = True) -> LoadedProgram:
    program, found = read_program(path, verify)
    warn_version_skew(found)
    warn_unusable(found, device)
    module = branches.resolve(program.module())  # each engine_usable asked once per device, not per call
    check = input_check.install(module)  # torch's per-call input check, with integer bounds computed once
    if device is not None:
        module.to(device)
    runner = InferenceModule(module)
    loaded = LoadedProgram("exported_program", runner, found, names.program_ranges(program),
                           describe_program(program)["inputs"], exported=program)
    loaded.short_path = short_path.build(module, runner, check)
    return loaded
