"""Runs one pytest file under `bazel test`, writing JUnit XML where Bazel asks (CI counts from it)."""
import os
import sys
import tempfile

# Bazel puts the runfiles root on the path; its py/ folder would shadow pytest's `py` shim.
_shadowing = {p for p in sys.path if os.path.isdir(os.path.join(p, "py", "trtpack"))}
sys.path[:] = [p for p in sys.path if p not in _shadowing]
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in _shadowing)

# The engine cache goes to the test's own temporary folder: tests neither fill ~/.cache nor see each other's plans.
os.environ["TRTPACK_CACHE_DIR"] = os.path.join(os.environ.get("TEST_TMPDIR") or tempfile.mkdtemp(), "trtpack-cache")

import pytest  # noqa: E402

args = sys.argv[1:] + ["-p", "no:cacheprovider", "-q", "-rs"]
if os.environ.get("XML_OUTPUT_FILE"):
    args.append("--junitxml=" + os.environ["XML_OUTPUT_FILE"])
sys.exit(pytest.main(args))
