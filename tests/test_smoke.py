"""Smoke test of the package as a user meets it: import, version, the op namespace from the C++ library."""
import torch

import trtpack


def test_version_comes_from_core():
    assert trtpack.__version__.count(".") == 2
    assert trtpack.__version__ == trtpack._native.core.__version__


def test_ops_are_registered_by_the_runtime_library():
    schema = str(torch.ops.trtpack.execute_engine.default._schema)
    assert schema.startswith("trtpack::execute_engine(Tensor[] inputs, Tensor plan, str meta) -> Tensor[]")
    usable = str(torch.ops.trtpack.engine_usable.default._schema)
    assert usable.startswith("trtpack::engine_usable(Tensor[] inputs, Tensor plan, str meta) -> Tensor")


def test_errors_are_catchable_by_their_standard_bases():
    assert issubclass(trtpack.FormatError, ValueError)
    assert issubclass(trtpack.IncompatibleEngineError, trtpack.TrtpackError)
