"""Programs whose outputs are model-defined pytree types load and run in a process that never imported the code
that defines them (.ep and .pt2): a dataclass / ModelOutput comes back as a dict with the same keys, a named tuple
as a tuple; where the defining module is imported, the original type comes back."""
import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import trtpack
from tests.support import python_env

MYLIB = textwrap.dedent('''
    import dataclasses
    from typing import NamedTuple, Optional

    import torch

    @dataclasses.dataclass
    class Output:
        logits: torch.Tensor
        hidden: torch.Tensor
        extra: Optional[torch.Tensor] = None

    torch.export.register_dataclass(Output, serialized_type_name="mylib.Output")

    class Pair(NamedTuple):
        first: torch.Tensor
        second: torch.Tensor

    torch.utils._pytree._register_namedtuple(Pair, serialized_type_name="mylib.Pair")  # torch needs it to save

    class Model(torch.nn.Module):
        def forward(self, x):
            return {"out": Output(logits=x * 2, hidden=x + 1), "pair": Pair(x - 1, x * 3)}
''')

CHILD = textwrap.dedent('''
    import json, sys
    import torch, trtpack
    loaded = trtpack.load(sys.argv[1], trust_native_code=True)
    out = loaded(torch.ones(2, 3))
    print(json.dumps({"mylib_imported": "mylib" in sys.modules, "out_type": type(out["out"]).__name__,
                      "keys": list(out["out"]) if isinstance(out["out"], dict) else None,
                      "logits": out["out"]["logits"].tolist() if isinstance(out["out"], dict) else None,
                      "extra": out["out"].get("extra", "missing") if isinstance(out["out"], dict) else None,
                      "pair_is_tuple": isinstance(out["pair"], tuple), "pair_second": out["pair"][1].tolist()}))
''')


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pytree")
    (folder / "mylib.py").write_text(MYLIB)
    mylib = import_mylib(str(folder / "mylib.py"))
    program = torch.export.export(mylib.Model(), (torch.ones(2, 3),), strict=False)
    paths = {}
    for suffix in (".ep", ".pt2"):
        paths[suffix] = str(folder / f"model{suffix}")
        trtpack.save(program, paths[suffix])
    return paths


def import_mylib(path: str):
    """The model's library imported as `mylib` (registering its pytree types), from its file: no sys.path edit."""
    if "mylib" not in sys.modules:
        spec = importlib.util.spec_from_file_location("mylib", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["mylib"] = module
        spec.loader.exec_module(module)
    return sys.modules["mylib"]


@pytest.mark.parametrize("suffix", [".ep", ".pt2"])
def test_loads_without_the_defining_module_as_plain_containers(saved, suffix, tmp_path):
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    proc = subprocess.run([sys.executable, str(child), saved[suffix]], capture_output=True, text=True,
                          cwd=str(tmp_path), timeout=300, env=python_env.env())  # trtpack, not mylib's folder
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["mylib_imported"] is False
    assert result["out_type"] == "dict" and result["keys"] == ["logits", "hidden", "extra"]
    assert result["logits"] == [[2.0] * 3] * 2 and result["extra"] is None
    assert result["pair_is_tuple"] and result["pair_second"] == [[3.0] * 3] * 2


def test_the_original_type_comes_back_where_its_module_is_imported(saved):
    mylib = import_mylib(os.path.join(os.path.dirname(saved[".ep"]), "mylib.py"))
    out = trtpack.load(saved[".ep"])(torch.ones(2, 3))
    assert isinstance(out["out"], mylib.Output)
    assert isinstance(out["pair"], mylib.Pair)


def test_a_type_that_cannot_be_rebuilt_names_the_package_to_import():
    from trtpack.artifacts import pytree_types
    spec = json.dumps([1, {"type": "somelib.models.Weird", "context": json.dumps({"a": 1}), "children_spec": []}])
    with pytest.raises(trtpack.FormatError, match=r"import somelib") as info:
        pytree_types.prepare([spec])
    assert "re-save" not in str(info.value).lower()
