"""Which torch a native library was built for, who defines the trtpack:: ops, and the errors a user meets when
versions differ. (The installed wheel under other CPythons and torches: test_user_env.py, run by run.sh.)"""
import json
import os
import shutil
import subprocess
import sys
import warnings

import pytest
import torch

import trtpack
from trtpack.runtime import registration
from tests.support import python_env
from tests.support.engine_programs import EngineWithFallback
from tests.support.records import make_record


def _in_fresh_process(code: str, **env):
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=python_env.env(**env),
                          timeout=300)
    return proc.returncode, proc.stdout.strip().splitlines(), proc.stderr


REPORT = ("import json, warnings; warnings.simplefilter('always')\n"
          "with warnings.catch_warnings(record=True) as caught:\n"
          "    import trtpack\n"
          "print(json.dumps({**trtpack.runtime.registration.active().as_dict(), "
          "'warnings': [str(w.message) for w in caught]}))")


@pytest.fixture(scope="module")
def other_torch_library(tmp_path_factory):
    """A copy of this build's libtorchtrt_runtime.so whose recorded torch is 2.99.0."""
    library = registration.active().library
    assert library and registration.built_for(library), "the suite runs with the native library"
    data = open(library, "rb").read()
    marker = b"trtpack-runtime-build-info: torch "
    at = data.index(marker) + len(marker)
    end = data.index(b";", at)
    copy = tmp_path_factory.mktemp("other") / "libtorchtrt_runtime.so"
    copy.write_bytes(data[:at] + b"2.99.0".ljust(end - at, b"\0")[: end - at] + data[end:])
    return str(copy)


def test_the_built_library_records_the_torch_it_was_compiled_against():
    assert registration.active().kind == "native"
    built = registration.built_for(registration.active().library)
    assert registration.release(built) == registration.release(torch.__version__), built


def test_a_file_without_the_record_says_nothing(tmp_path):
    plain = tmp_path / "libtorchtrt_runtime.so"
    plain.write_bytes(b"\x7fELF" + b"\0" * 100)
    assert registration.built_for(str(plain)) is None
    assert registration.built_for(str(tmp_path / "missing.so")) is None


def test_releases_compare_major_and_minor():
    assert registration.release("2.15.0+cu132") == registration.release("2.15.1") == "2.15"
    assert registration.release("2.13.0+cpu") != registration.release("2.15.0")


def test_a_library_for_another_torch_is_never_loaded_and_the_user_is_told(other_torch_library):
    code, out, err = _in_fresh_process(REPORT, TRTPACK_RUNTIME_LIBRARY=other_torch_library)
    assert code == 0, err
    got = json.loads(out[-1])
    assert got["library"] != other_torch_library  # the build's own library, which fits, is used instead
    assert any("TRTPACK_RUNTIME_LIBRARY is not used" in w and "built for torch 2.99.0" in w for w in got["warnings"])


def test_python_registration_defines_the_same_schemas():
    code, out, err = _in_fresh_process(
        REPORT.replace("print(", "import torch; print(str(torch.ops.trtpack.engine_usable.default._schema)); print("),
        TRTPACK_OPS="python")
    assert code == 0, err
    assert out[-2] == str(torch.ops.trtpack.engine_usable.default._schema)
    assert json.loads(out[-1])["kind"] == "python" and json.loads(out[-1])["reason"] == "TRTPACK_OPS=python"


def test_a_bad_trtpack_ops_value_is_named():
    code, _, err = _in_fresh_process("import trtpack", TRTPACK_OPS="cpp")
    assert code != 0 and "TRTPACK_OPS='cpp' is not one of auto, native, python" in err


def test_under_python_registration_a_pt2_is_refused_with_the_build_command():
    code, out, err = _in_fresh_process(
        "import trtpack\nfrom trtpack.runtime import registration\n"
        "try:\n    registration.require_native('the AOTInductor package x.pt2')\n"
        "except trtpack.IncompatibleEngineError as e:\n    print(e)\n", TRTPACK_OPS="python")
    assert code == 0, err
    assert out[-1].startswith("trtpack: the AOTInductor package x.pt2 needs libtorchtrt_runtime.so built for torch ")
    assert "tools/build_runtime.sh --torch " in out[-1] and len(out) == 1


def test_an_ep_torch_cannot_read_names_both_torch_versions(tmp_path, monkeypatch):
    plan, meta = make_record(inputs=[("x", "float32", ["s0", 4])], outputs=[("y", "float32", ["s0", 4])],
                             symbols={"s0": (1, 2, 16)}, name="versions")
    program = torch.export.export(EngineWithFallback(plan, meta, torch.nn.ReLU()), (torch.randn(2, 4),),
                                  dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=16)},))
    path = str(tmp_path / "m.ep")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trtpack.save(program, path)
    saved_with = json.loads(meta)["torch_version"]

    def unreadable(*args, **kwargs):
        raise RuntimeError("Serialized version (9, 0) does not match our current schema version")

    monkeypatch.setattr(torch.export, "load", unreadable)
    monkeypatch.setattr(torch, "__version__", "2.99.0")
    with pytest.raises(trtpack.FormatError) as caught:
        trtpack.load(path)
    message = str(caught.value)
    assert f"was saved with torch {saved_with} and torch 2.99.0 cannot read it" in message
    assert "Serialized version (9, 0)" in message and "compile and save the model again under torch 2.99.0" in message


def test_a_hugging_face_model_imports_in_the_project_venv():
    """The zoo's torchvision (a CUDA build that cannot load beside the venv's CPU torch) lives outside the venv, so a
    user who opens .venv to try a transformers model is not stopped by it."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", "import importlib.util as u; from transformers import BertModel; "
                           "print(u.find_spec('torchvision') is None)"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "True"



def test_a_runtime_library_others_can_write_is_never_loaded(tmp_path):
    folder = tmp_path / "runtime"
    folder.mkdir()
    library = folder / "libtorchtrt_runtime.so"
    shutil.copy(registration.active().library, library)
    os.chmod(library, 0o666)  # anyone could have replaced it: it must not run at import
    code, out, err = _in_fresh_process(REPORT, TRTPACK_RUNTIME_LIBRARY=str(library))
    assert code == 0, err
    got = json.loads(out[-1])
    assert got["library"] != str(library)
    assert any("is writable by its group or others" in w for w in got["warnings"]), got["warnings"]
