"""Lets the test files import their helpers (models, op_cases, fake_tensorrt) by name, also under Bazel, whose
runfiles tree makes every folder a package."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
