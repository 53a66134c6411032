"""Helpers of test_atomic_save shared with its child processes (which must not import pytest)."""
import hashlib
import os
import warnings
import zipfile

import torch

import trtpack
from fuzz import programs
from trtpack.artifacts import manifest, pt2

BODY = 2 << 20  # a 2 MiB plan: a save takes tens of milliseconds


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def leftovers(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith((".tmp", ".commit")))


def fake_package(path, size=BODY):
    """A zip laid out like an AOTInductor package (stands in for the compiled one; never loaded)."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("program/data/aotinductor/model/model.wrapper.so", os.urandom(size))
        z.writestr("program/data/aotinductor/model/model_metadata.json", '{"AOTI_DEVICE_KEY": "cpu"}')


def check_artifact(path, fmt):
    """The artifact at `path` loads (plans verified against their SHA-256) and computes the right thing."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt == "pt2":  # loading would dlopen the stand-in library: check what load checks before that
            pt2.check_archive(path)
            assert len(manifest.read(path).engines) == 1
            return
        loaded = trtpack.load(path)
        if fmt == "ep":
            x = programs.example_input()
            torch.testing.assert_close(loaded(x), programs.reference(x))
        else:
            assert loaded.engines[0].plan.numel() == 64 + BODY
