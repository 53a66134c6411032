"""ExportedProgram archives (.ep): torch.export's zip, with trtpack's manifest beside the program.

Before torch reads an archive, ep_check validates it against what trtpack writes (docs/SECURITY.md)."""
import torch

from trtpack import names
from trtpack.artifacts import ep_check, manifest, pytree_types
from trtpack.artifacts.atomic import atomic_path
from trtpack.artifacts.program import LoadedProgram, describe_program, validate, warn_unusable, warn_version_skew
from trtpack.errors import FormatError, TrtpackError


def write(program: torch.export.ExportedProgram, found: list, path: str) -> None:
    extra = {manifest.ENTRY: manifest.encode(found, describe_program(program))}
    with atomic_path(path, ".pt2") as tmp:  # torch names the archive's root folder after the file
        torch.export.save(program, tmp, extra_files=extra)


def read(path: str, device=None) -> LoadedProgram:
    specs = ep_check.check(path)
    try:
        with pytree_types.standins(specs), open(path, "rb") as f:  # a file object: torch warns unless .pt2
            program = torch.export.load(f)
        found = validate(program)
    except TrtpackError:
        raise
    except Exception as e:  # torch's reader raises many types for a damaged archive; all mean the same here
        raise FormatError(f"trtpack: {path!r} is not a readable ExportedProgram archive ({type(e).__name__}: "
                          f"{str(e)[:300]}).") from e
    warn_version_skew(found)
    warn_unusable(found, device)
    module = program.module()
    if device is not None:
        module.to(device)
    return LoadedProgram("exported_program", module, found, names.program_ranges(program),
                         describe_program(program)["inputs"], exported=program)
