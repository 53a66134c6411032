"""Transitional re-export: moved to tests/support/fake_tensorrt_builder.py; import it from there."""
from tests.support.fake_tensorrt_builder import TARGET_BITS, make, rtx_plan  # noqa: F401
