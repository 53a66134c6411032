"""Compiles one zoo model, saves it to every format and loads each artifact in a fresh process."""
import json
import os
import subprocess
import sys
import time
import warnings

import torch
from torch.utils import _pytree as pytree

import trtpack

HERE = os.path.dirname(os.path.abspath(__file__))
FORMATS = (".ep", ".pt2", ".engine")


def compile_model(entry, *, fallback, formats=FORMATS, folder, cache=True):
    """{"summary", "seconds", "artifacts": {suffix: child result or save error}}. cache=False builds every engine, so
    "seconds" is a whole compile rather than one served partly from the engine cache."""
    torch.manual_seed(0)
    model, args, kwargs, dynamic = entry.make()
    model.eval()
    with torch.no_grad():
        expected = [t for t in pytree.tree_leaves(model(*args, **kwargs)) if isinstance(t, torch.Tensor)]
    case_path = os.path.join(folder, f"{entry.name}.case.pt")
    torch.save({"args": list(args), "kwargs": kwargs, "expected": expected}, case_path)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = trtpack.compile(model, args, kwarg_inputs=kwargs, dynamic_shapes=dynamic, targets=["sm86"],
                                 fallback=fallback, verify=True, cache=cache)
    report = {"seconds": time.perf_counter() - started, "summary": module.meta["trtpack_summary"], "artifacts": {}}
    for suffix in formats:
        path = os.path.join(folder, f"{entry.name}{'_fb' if fallback else ''}{suffix}")
        try:
            trtpack.save(module, path)
        except trtpack.TrtpackError as error:
            report["artifacts"][suffix] = {"saved": False, "error": str(error).splitlines()[0][:200]}
            continue
        report["artifacts"][suffix] = fresh_process_load(path, case_path, entry.library)
    return report


def fresh_process_load(path, case_path, library) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p and p != HERE)}
    proc = subprocess.run([sys.executable, os.path.join(HERE, "zoo_load_check.py"), path, case_path, library],
                          capture_output=True, text=True, env=env, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"saved": True, "loaded": False, "error": f"exit {proc.returncode}: {proc.stderr.strip()[-400:]}"}
    return {"saved": True, **json.loads(lines[-1])}
