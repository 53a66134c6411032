"""Checks a saved artifact against reference outputs in a fresh process:
`python -m trtpack.cli.roundtrip FILE DATA [DEVICE]`.

DATA is a safetensors file with inputs `in.N` / `kw.NAME` and expected outputs `out.N` (the flattened pytree).
Prints one JSON line: {"ok", "max_abs_diff", "ran", "reason"}.
"""
import json
import sys
import warnings

import torch
from safetensors.torch import load_file, save_file
from torch.utils._pytree import tree_flatten

ATOL, RTOL = 1e-3, 1e-3


def write_case(path: str, args, kwargs, outputs) -> None:
    tensors = {f"in.{i}": t for i, t in enumerate(args)}
    tensors.update({f"kw.{k}": t for k, t in kwargs.items()})
    tensors.update({f"out.{i}": t for i, t in enumerate(tree_flatten(outputs)[0])})
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, path)


def read_case(path: str):
    data = load_file(path)
    count = lambda prefix: len([k for k in data if k.startswith(prefix)])  # noqa: E731
    args = [data[f"in.{i}"] for i in range(count("in."))]
    kwargs = {k[3:]: v for k, v in data.items() if k.startswith("kw.")}
    expected = [data[f"out.{i}"] for i in range(count("out."))]
    return args, kwargs, expected


def check(artifact: str, case: str, device=None) -> dict:
    import trtpack
    from trtpack import machine, record

    args, kwargs, expected = read_case(case)
    if device is not None:
        args = [a.to(device) for a in args]
        kwargs = {k: v.to(device) for k, v in kwargs.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            program = trtpack.load(artifact, device=device, trust_native_code=True)  # the caller just wrote it
        except trtpack.IncompatibleEngineError as e:  # e.g. a .pt2 where no libtorchtrt_runtime.so fits this torch
            return {"ok": False, "ran": "not loadable here", "reason": str(e).splitlines()[0], "max_abs_diff": None}
    here = machine.describe(device)
    verdicts = [(e, record.compatibility(e.record, here)) for e in program.engines]
    reasons = [v["reason"] for _, v in verdicts if not v["usable"]]
    if any(not v["usable"] and not e.fallback for e, v in verdicts):
        return {"ok": False, "ran": "nothing", "reason": reasons[0], "max_abs_diff": None}
    try:
        got = [t.cpu() for t in tree_flatten(program(*args, **kwargs))[0]]
    except trtpack.IncompatibleEngineError as e:
        return {"ok": False, "ran": "nothing", "reason": str(e).splitlines()[0], "max_abs_diff": None}
    if len(got) != len(expected):
        return {"ok": False, "ran": "?", "reason": f"{len(got)} outputs, expected {len(expected)}",
                "max_abs_diff": None}
    diff = max((float((g.float() - e.float()).abs().max()) if g.numel() else 0.0) for g, e in zip(got, expected))
    ok = all(g.shape == e.shape and torch.allclose(g.float(), e.float(), atol=ATOL, rtol=RTOL)
             for g, e in zip(got, expected))
    ran = "pytorch fallback" if reasons else "tensorrt"
    return {"ok": ok, "ran": ran, "reason": reasons[0] if reasons else "", "max_abs_diff": diff}


if __name__ == "__main__":
    print(json.dumps(check(*sys.argv[1:4])))
