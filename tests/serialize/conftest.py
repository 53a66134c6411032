"""The serialize tests reuse the compiler tests' models (tests/compiler/models.py)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "compiler"))
