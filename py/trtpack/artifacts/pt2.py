"""AOTInductor packages (.pt2): compile a program ahead of time into a shared library that Python
(`load`) or C++ (`//tools:run_pt2`, libtorch + libtorchtrt_runtime.so, no Python) can run.

trtpack's ops are defined in C++ (libtorchtrt_runtime.so), so the compiled package calls them through
AOTInductor's proxy executor; importing trtpack loads that library, and C++ programs link it.
A package runs only on the device type it was built on: build CUDA packages on a CUDA machine.
"""
import json
import os
import zipfile
import zlib

import torch
import torch.utils._pytree as pytree

from trtpack import _native, error_translation, names, record
from trtpack.runtime import registration  # importing trtpack.runtime defines torch.ops.trtpack
from trtpack.artifacts import atomic, manifest, pytree_types, zip_layout
from trtpack.artifacts.files import open_regular
from trtpack.artifacts.program import (Engine, LoadedProgram, describe_program, program_to_save, structure_names,
                                       tensor_spec, user_input_nodes, warn_unusable, warn_version_skew,
                                       with_example_inputs)
from trtpack.errors import FormatError, IncompatibleEngineError, TrtpackError

# Package metadata key holding the flattened input specs; //tools:run_pt2 checks inputs against it.
MAX_METADATA_BYTES = 1 << 20  # AOTInductor's <model>_metadata.json: a few hundred bytes
INPUTS_METADATA_KEY = "trtpack.inputs"
OUTPUTS_METADATA_KEY = "trtpack.outputs"


def package(exported_program_or_graph_module, path, *, arg_inputs=None, kwarg_inputs=None, dynamic_shapes=None,
            extra_files=None):
    """Compiles a program with AOTInductor and writes it to `path` as a .pt2 package.

    Args:
        exported_program_or_graph_module: a `torch.export.ExportedProgram`, or an `nn.Module`
            (e.g. what `trtpack.compile` returns), which is exported first.
        path: where to write the package. Written atomically: a failed build leaves no file there.
        arg_inputs: example positional inputs; their device type is the package's device type.
        kwarg_inputs: example keyword inputs.
        dynamic_shapes: as for `torch.export.export`; only when a module is given.
        extra_files: {name: text} stored in the archive under `<root>/extra/` (trtpack's manifest).

    Returns:
        `path`.

    Example:
        >>> trtpack.artifacts.pt2.package(model, "model.pt2", arg_inputs=(torch.randn(2, 3),))
        >>> trtpack.artifacts.pt2.load("model.pt2")(torch.randn(2, 3))
    """
    kwarg_inputs = dict(kwarg_inputs or {})
    if arg_inputs is None and isinstance(exported_program_or_graph_module, torch.export.ExportedProgram):
        arg_inputs = ()
    if not isinstance(arg_inputs, (tuple, list)):
        raise TrtpackError(f"arg_inputs must be a tuple or list of example inputs, got {type(arg_inputs).__name__}")
    arg_inputs = tuple(arg_inputs)
    _check_device_available(pytree.tree_leaves((arg_inputs, kwarg_inputs)))
    if isinstance(exported_program_or_graph_module, torch.export.ExportedProgram) and dynamic_shapes is not None:
        raise TrtpackError("dynamic_shapes applies only when a module is exported; "
                           "an ExportedProgram already carries its dynamic shapes")
    if not isinstance(exported_program_or_graph_module, (torch.export.ExportedProgram, torch.nn.Module)):
        raise TrtpackError(f"cannot package a {type(exported_program_or_graph_module).__name__}: give a "
                           "torch.export.ExportedProgram or an nn.Module")
    ep = program_to_save(exported_program_or_graph_module, arg_inputs, kwarg_inputs, dynamic_shapes)
    _check_device_available([n.meta.get("val") for n in ep.graph.nodes if n.op == "placeholder"])
    ep = with_example_inputs(ep)  # a program read back from an .ep has none; AOTInductor needs them

    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FormatError(f"{path}: folder {parent} does not exist; create it first")
    # Build in a locked private folder beside the target (atomic.py: one filesystem, swept when its saver dies),
    # under the final file's stem (AOTInductor names the archive's root folder after it).
    with atomic.atomic_path(path, ".pt2") as staged:
        torch._inductor.aoti_compile_and_package(
            ep,
            package_path=staged,
            inductor_configs={"aot_inductor.metadata": _metadata(ep)},
        )
        if extra_files:
            with zipfile.ZipFile(staged, "a") as archive:
                root = archive.namelist()[0].split("/", 1)[0]
                for name, text in extra_files.items():
                    archive.writestr(f"{root}/extra/{name}", text)
    return path


def load(path, device=None):
    """Loads a .pt2 package as a callable that takes the same inputs as the packaged program.

    Args:
        path: a package written by `package` (or by `torch._inductor.aoti_compile_and_package`).
        device: None (the package's device), or a device of the package's type, e.g. "cuda:1".

    Raises:
        FormatError: the file is missing or not an AOTInductor package.
        IncompatibleEngineError: the package was built for another device type, or it needs CUDA
            and this machine has none.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FormatError(f"{path}: no such file")
    check_archive(path)
    return _load_checked(path, device)


def _load_checked(path: str, device=None):
    """AOTInductor's loader on a package check_archive passed."""
    built_for = package_device_type(path)
    device_index = -1
    if device is not None:
        device = torch.device(device)
        if built_for is not None and device.type != built_for:
            raise IncompatibleEngineError(
                f"{path} was built for {built_for} and an AOTInductor package runs only on the device type it was built on; "
                f"load it with device=None or '{built_for}', or rebuild it on a {device.type} machine")
        device_index = -1 if device.index is None else device.index
    if built_for == "cuda" and not torch.cuda.is_available():
        raise IncompatibleEngineError(
            f"{path} was built for CUDA but this machine has no CUDA device (torch {torch.__version__}); "
            "run it on a CUDA machine, or build a CPU package on a CPU machine")
    try:
        return torch._inductor.aoti_load_package(path, device_index=device_index)
    except (RuntimeError, zipfile.BadZipFile, zlib.error, OSError, EOFError) as e:  # damaged archive entries too
        raise FormatError(f"{path}: cannot be loaded as an AOTInductor package: "
                          f"{error_translation.first_line(e)}") from e


def package_device_type(path):
    """The device type ("cpu", "cuda", ...) a .pt2 was built for, read from its metadata; None if not recorded."""
    device = package_metadata(path).get("AOTI_DEVICE_KEY")
    return device if isinstance(device, str) else None


def package_metadata(path) -> dict:
    """The package's AOTInductor metadata (string -> string: the device key, `trtpack.inputs`, `trtpack.outputs`),
    read through the checked zip reader without loading its library; {} if it has none."""
    fd, size = open_regular(path)
    try:
        for entry in zip_layout.read_layout(fd, size):
            if "/data/aotinductor/" in entry.name and entry.name.endswith("_metadata.json"):
                data = zip_layout.read_entry(fd, entry, MAX_METADATA_BYTES)
                try:
                    meta = json.loads(data)
                except ValueError as e:
                    raise FormatError(f"{path}: {entry.name} is not valid JSON ({e}); the package is damaged") from e
                if isinstance(meta, dict) and isinstance(meta.get("AOTI_DEVICE_KEY"), str):
                    return meta
    except zip_layout.LayoutError as e:
        raise _not_trtpack_package(path, e) from None
    finally:
        os.close(fd)
    return {}


def _not_trtpack_package(path: str, error: zip_layout.LayoutError) -> FormatError:
    return FormatError(f"trtpack: {path!r} is not an AOTInductor package as trtpack writes it: {error}. Re-save it "
                       "with trtpack.save.")


def input_specs(ep):
    """Per flattened user input: {"dtype": "float32", "shape": [2, "s0", ...]} (str = dynamic dimension)."""
    specs = [tensor_spec(node.name, node.meta.get("val")) for node in user_input_nodes(ep)]
    if any(spec["dtype"] is None for spec in specs):
        return None  # non-tensor inputs (ints, None): leave the checks to AOTInductor
    return [{"dtype": spec["dtype"], "shape": spec["shape"]} for spec in specs]


def _metadata(ep):
    meta = {"trtpack.version": _native.core.__version__}
    specs = input_specs(ep)
    if specs is not None:
        meta[INPUTS_METADATA_KEY] = json.dumps(specs, separators=(",", ":"))
    meta[OUTPUTS_METADATA_KEY] = json.dumps(output_names(ep), separators=(",", ":"))
    return meta


def output_names(ep) -> list:
    """A name per flattened output, from the program's output structure, so a C++ caller (//tools:run_pt2) keeps
    what a model-defined output type (a dataclass, ModelOutput, dict) calls each tensor: "last_hidden_state",
    "past.0.key". Outputs that are only positions (a tensor, a tuple) are output_0 .. output_{n-1}."""
    named = structure_names(ep)
    if named is not None:
        return named
    return [f"output_{i}" for i in range(ep.call_spec.out_spec.num_leaves)]


def _check_device_available(values):
    for v in values:
        if isinstance(v, torch.Tensor) and v.device.type == "cuda" and not torch.cuda.is_available():
            raise IncompatibleEngineError(
                "AOTInductor builds a package for the device type of its inputs, and these are on cuda, but this "
                f"machine has no CUDA device (torch {torch.__version__}); build .pt2 packages for CUDA on a CUDA "
                "machine (there is no cross compilation), or give CPU inputs for a CPU package")



def write(program: torch.export.ExportedProgram, found: list, path: str) -> None:
    package(program, path, extra_files={manifest.ENTRY: manifest.encode(found, describe_program(program))})


def check_archive(path: str, verify: bool = True) -> None:
    """Before AOTInductor extracts the package: trtpack's zip layout (one central directory, no overlaps, plain
    relative names, so nothing is written outside the extraction folder) and, with `verify`, every CRC-32."""
    fd, size = open_regular(path)
    try:
        entries = zip_layout.read_layout(fd, size)
        if verify:
            zip_layout.check_crcs(fd, entries)
    except zip_layout.LayoutError as e:
        raise _not_trtpack_package(path, e) from None
    finally:
        os.close(fd)


def read(path: str, device=None, verify: bool = True) -> LoadedProgram:
    """Loads a trtpack .pt2 (the caller has opted in to running its native code)."""
    check_archive(path, verify)
    found_manifest = manifest.read(path)
    found = [Engine(record.decode_meta(meta)["name"], meta, None, fallback)
             for meta, fallback in found_manifest.engines]
    warn_version_skew(found)
    warn_unusable(found, device)
    if found:  # the package's kernels call the trtpack:: ops through the dispatcher, from C++
        registration.require_native(f"the AOTInductor package {path!r}")
    program = found_manifest.program or {}
    ranges = {name: tuple(bounds) for name, bounds in program.get("symbols", {}).items()}
    if not program:  # a 1.0 manifest: the engines' ranges are what is known
        for engine in found:
            ranges.update(names.record_ranges(engine.record))
    return LoadedProgram("aot_inductor", PackageRunner(_load_checked(path, device)), found, ranges,
                         program.get("inputs"))


class PackageRunner:
    """Calls an AOTInductor package like torch's runner does, with its pytree specs read once at load, where
    model-defined types the process lacks get placeholder types (pytree_types)."""

    def __init__(self, compiled):
        self.compiled = compiled
        in_text, out_text = compiled.loader.get_call_spec()
        with pytree_types.placeholders([in_text, out_text]):
            self.in_spec, self.out_spec = pytree.treespec_loads(in_text), pytree.treespec_loads(out_text)

    def __call__(self, *args, **kwargs):
        flat = pytree.tree_leaves((args, _reorder_kwargs(kwargs, self.in_spec)))
        outputs = self.compiled.loader.boxed_run([x for x in flat if isinstance(x, torch.Tensor)])
        return pytree.tree_unflatten(outputs, self.out_spec)

    def get_metadata(self):
        return self.compiled.get_metadata()


def _reorder_kwargs(kwargs: dict, in_spec) -> dict:
    """kwargs in the order the program's in_spec lists them (what torch's runner does)."""
    if not kwargs:
        return {}
    order = in_spec.children_specs[1].context
    missing = [k for k in order if k not in kwargs]
    extra = [k for k in kwargs if k not in order]
    if missing or extra:
        raise TrtpackError(f"trtpack: the program takes keyword inputs {list(order)}; missing {missing}, "
                           f"unexpected {extra}")
    return {k: kwargs[k] for k in order}
