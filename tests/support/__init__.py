"""Helpers shared by trtpack's tests, imported one way: `from tests.support import records`.

Under `bazel test` the runfiles root is on sys.path (depend on //tests/support); from a checkout run pytest as
`python -m pytest` from the repository root, which puts the root on sys.path. Subprocesses a test starts get the same
path through `python_env.env()`.
"""
