"""Transitional re-export for tests/reliability/test_concurrency.py: import tests.support.fake_tensorrt_runtime."""
from tests.support.fake_tensorrt_runtime import FakeTensorRT  # noqa: F401
