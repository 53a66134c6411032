"""write_repository: a Triton model folder (config.pbtxt + version folder with model.py and the artifact) from any
trtpack artifact, decided from the artifact's manifest or record and checked before anything is written."""
import filecmp
import json
import os
import re
import shutil
import warnings
from typing import Optional

import torch

import trtpack
from trtpack.artifacts import atomic, manifest, pt2
from trtpack.errors import FormatError, TrtpackError, UntrustedCodeError
from trtpack.triton import config

ARTIFACT_NAMES = {"exported_program": "model.ep", "aot_inductor": "model.pt2", "engine": "model.engine"}
MODEL_PY = """\
# Written by `trtpack triton`. Triton's Python backend runs this file; trtpack.triton.backend serves the artifact
# beside it, as config.pbtxt's trtpack_* parameters say. The serving Python (first python3 on PATH) needs trtpack.
import os
import sys

# The backend's stub ignores PYTHONPATH: honour it, so that a trtpack found only through it (a checkout) imports.
sys.path[:0] = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if os.path.isabs(p) and p not in sys.path]
from trtpack.triton.backend import TritonPythonModel  # noqa: E402,F401
"""
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def write_repository(artifact, repo, name: Optional[str] = None, *, version: int = 1,
                     max_batch_size: Optional[int] = None, instances: int = 1, kind: str = "auto",
                     trust_native_code: bool = False) -> str:
    """Writes `repo/NAME/config.pbtxt` and `repo/NAME/VERSION/` (model.py + the artifact) for Triton's Python backend.

    Args:
        artifact: a .ep, .pt2 or .engine written by trtpack.save (format read from its bytes).
        repo: the model repository folder (created if missing); other models in it are left alone.
        name: the model's name (default: the artifact's file name without suffix).
        version: the version folder, >= 1.
        max_batch_size: default the compiled max of the batch dim when every input and output starts with one
            (then Triton batches requests dynamically); never above it; 0 turns batching off.
        instances: model instances per device (instance_group count).
        kind: "cpu" (the PyTorch fallback serves), "gpu" (engines on the serving GPUs, checked when the model
            loads), or "auto": "gpu" when every engine can run on this machine's GPU, else "cpu" when every engine
            has a fallback, else refused with each engine's reason.
        trust_native_code: a .pt2 runs its compiled library when Triton loads it: only with this set.
    Returns:
        the model folder. Writing the same model again is a no-op; a different model or config under the same
        name and version is refused. The model folder (or a new version folder) appears whole, in one rename.
    Example:
        write_repository("mlp.ep", "models")   # then: trtpack tritonserver models
    """
    path = os.fspath(artifact)
    spec = model_spec(path, name=name, max_batch_size=max_batch_size, instances=instances, kind=kind,
                      trust_native_code=trust_native_code)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise TrtpackError(f"trtpack: version must be an integer >= 1 (Triton's version folders), got {version!r}")
    return _write(path, os.fspath(repo), spec, config.render(spec), str(version))


def model_spec(path: str, *, name=None, max_batch_size=None, instances=1, kind="auto",
               trust_native_code=False) -> config.ModelSpec:
    """What the config says, from the artifact (nothing written): names, types, dims, batching, instance kind."""
    info = trtpack.inspect(path)
    fmt = info["format"]
    if fmt == "aot_inductor" and not trust_native_code:
        raise UntrustedCodeError(f"trtpack: {path!r} is an AOTInductor package: Triton would run the compiled "
                                 "library inside it when the model loads. Serve it only if you trust where it came "
                                 "from, with trust_native_code=True (CLI: --trust_native_code); .ep artifacts run "
                                 "no code from the file.")
    inputs, outputs, symbols = _signature(path, info)
    untyped = [t.name for t in inputs + outputs if t.dtype is None]
    if untyped:
        raise TrtpackError(f"trtpack: {path!r}: {', '.join(untyped)} {'is' if len(untyped) == 1 else 'are'} not a "
                           "tensor; Triton carries tensors only. Compile a wrapper whose inputs and outputs are all "
                           "tensors.")
    for tensor in inputs + outputs:
        config.data_type(tensor)  # refuses types Triton cannot carry, before anything is written
    if not isinstance(instances, int) or instances < 1:
        raise TrtpackError(f"trtpack: instances must be an integer >= 1, got {instances!r}")
    name = name or re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.basename(path).split(".")[0]) or "model"
    if not _NAME.match(name):
        raise TrtpackError(f"trtpack: model name {name!r} is not a folder name Triton accepts; use letters, digits, "
                           "'_', '-' and '.', not starting with '.' or '-'.")
    return config.ModelSpec(
        name=name, inputs=inputs, outputs=outputs, symbols=symbols, artifact=ARTIFACT_NAMES[fmt],
        kind=_instance_kind(path, info, kind), instances=instances, trust_native_code=trust_native_code,
        max_batch_size=config.choose_max_batch_size(inputs, outputs, symbols, max_batch_size))


def _signature(path: str, info: dict) -> tuple:
    """(inputs, outputs, symbols) as served: the record's for an .engine, the manifest's for .ep / .pt2, with
    outputs named as the program's output structure names them (docs/FORMAT.md §11)."""
    if info["format"] == "engine":
        rec = info["engines"][0]
        symbols = {s: (r["min"], r["max"]) for s, r in rec["symbols"].items()}
        tensors = [[config.Tensor(t["name"], t["dtype"], t["shape"]) for t in rec[k]] for k in ("inputs", "outputs")]
        return tensors[0], tensors[1], symbols
    program = manifest.read(path).program
    if program is None:
        raise FormatError(f"trtpack: {path!r} was saved by a trtpack before 0.2 (manifest 1.0: no input and output "
                          "types); load it and save it again with this trtpack, then write the repository.")
    names = _output_names(path, info["format"], len(program["outputs"]))
    inputs = [config.Tensor(t["name"], t["dtype"], t["shape"]) for t in program["inputs"]]
    outputs = [config.Tensor(n, t["dtype"], t["shape"]) for n, t in zip(names, program["outputs"])]
    return inputs, outputs, {s: tuple(r) for s, r in program["symbols"].items()}


def _output_names(path: str, fmt: str, count: int) -> list:
    if fmt == "aot_inductor":
        try:
            names = json.loads(pt2.package_metadata(path).get(pt2.OUTPUTS_METADATA_KEY, "null"))
        except ValueError:
            names = None
    else:
        with warnings.catch_warnings():  # "engine cannot run here": what runs where is decided in _instance_kind
            warnings.simplefilter("ignore")
            names = pt2.output_names(trtpack.load(path).program)  # .ep: no code runs; checks every plan too
    good = isinstance(names, list) and len(names) == count and len(set(names)) == count and all(
        isinstance(n, str) and n for n in names)
    return names if good else [f"output_{i}" for i in range(count)]


def _instance_kind(path: str, info: dict, kind: str) -> str:
    if kind not in ("auto", "cpu", "gpu"):
        raise TrtpackError(f"trtpack: kind must be auto, cpu or gpu, got {kind!r}")
    engines = info["engines"]
    if info["format"] == "aot_inductor":  # AOTInductor compiles for one device type
        built = "gpu" if pt2.package_device_type(path) == "cuda" else "cpu"
        if kind not in ("auto", built):
            raise TrtpackError(f"trtpack: {path!r} is an AOTInductor package built for {built.upper()}, which runs "
                               f"only there; it cannot be served on {kind.upper()} instances. Package it on a "
                               f"{kind.upper()} machine, or serve the .ep.")
        kind = built
    if kind == "auto":
        on_gpu = torch.cuda.is_available() and engines and all(e["usable_here"] for e in engines)
        kind = "gpu" if on_gpu else "cpu"
        stuck = [e for e in engines if not e["fallback"] and not e["usable_here"]]
        if stuck:
            raise TrtpackError(f"trtpack: {path!r} cannot run on this machine's devices: " + _reasons(stuck) +
                               ". It has no PyTorch fallback to serve on CPU. Write the repository on the serving "
                               "machine, or pass kind='gpu' (--kind gpu) to write it for a GPU server whose GPUs "
                               "run these engines (the model refuses to load there if they can't), or compile "
                               "with fallback=True.")
    if kind == "cpu":
        stuck = [e for e in engines if not e["fallback"]]
        if stuck:
            raise TrtpackError(f"trtpack: {path!r} cannot be served on CPU instances: "
                               + ", ".join(repr(e["name"]) for e in stuck) + " has no PyTorch fallback, and TensorRT "
                               "engines run only on GPUs. Compile with fallback=True, or pass kind='gpu' "
                               "(--kind gpu) for a GPU server.")
    return kind


def _reasons(engines: list) -> str:
    return "; ".join(f"engine {e['name']!r}: {e['reason']}" for e in engines)


def _files(path: str, fmt: str) -> dict:
    """{name in the version folder: source file} for the artifact (an .engine travels with its sidecar)."""
    target = ARTIFACT_NAMES[fmt]
    if fmt != "engine":
        return {target: path}
    plan, sidecar = atomic.current_pair(path)
    return {target: plan, target + ".json": sidecar}


def _fill(folder: str, path: str, fmt: str) -> None:
    os.makedirs(folder)
    with open(os.path.join(folder, "model.py"), "w") as f:
        f.write(MODEL_PY)
    for name, source in _files(path, fmt).items():
        shutil.copyfile(source, os.path.join(folder, name))


def _same_version(folder: str, path: str, fmt: str) -> bool:
    files = {"model.py": None, **_files(path, fmt)}
    if set(os.listdir(folder)) != set(files):
        return False
    with open(os.path.join(folder, "model.py")) as f:
        if f.read() != MODEL_PY:
            return False
    return all(filecmp.cmp(source, os.path.join(folder, name), shallow=False)
               for name, source in files.items() if source is not None)


def _write(path: str, repo: str, spec: config.ModelSpec, text: str, version: str) -> str:
    fmt = {v: k for k, v in ARTIFACT_NAMES.items()}[spec.artifact]
    model_dir = os.path.join(repo, spec.name)
    os.makedirs(repo, exist_ok=True)
    config_path = os.path.join(model_dir, "config.pbtxt")
    if not os.path.isdir(model_dir):
        with atomic.staging(model_dir) as folder:
            staged = os.path.join(folder, spec.name)
            _fill(os.path.join(staged, version), path, fmt)
            with open(os.path.join(staged, "config.pbtxt"), "w") as f:
                f.write(text)
            try:
                os.rename(staged, model_dir)  # the whole model appears at once (fails if one appeared meanwhile)
            except OSError as e:
                raise TrtpackError(f"trtpack: {model_dir!r} appeared while it was being written ({e}); "
                                   "write the repository again.") from e
        return model_dir
    try:
        with open(config_path) as f:
            existing = f.read()
    except OSError:
        existing = None
    if existing != text:
        raise TrtpackError(f"trtpack: {model_dir!r} already holds a model with a different config.pbtxt"
                           f"{'' if existing is not None else ' (none)'}; it is left as it is. Choose another name "
                           "(--name), or remove that folder to replace it.")
    version_dir = os.path.join(model_dir, version)
    if os.path.isdir(version_dir):
        if _same_version(version_dir, path, fmt):
            return model_dir
        raise TrtpackError(f"trtpack: {version_dir!r} already holds a different model; it is left as it is. Write "
                           "this one as another version (--version N) or under another name (--name).")
    with atomic.staging(version_dir) as folder:
        _fill(os.path.join(folder, version), path, fmt)
        os.rename(os.path.join(folder, version), version_dir)
    return model_dir
