"""Child process of the zoo: loads one artifact in a process that never imported the model's library, runs it on
the saved inputs and compares with the saved eager outputs. Prints one JSON line.

usage: zoo_load_check.py ARTIFACT CASE.pt LIBRARY
"""
import json
import sys

import torch
from torch.utils import _pytree as pytree


def main(path, case_path, library):
    import trtpack
    case = torch.load(case_path, weights_only=True)
    result = {"library_imported": None, "loaded": False, "ran": False, "error": None}
    try:
        loaded = trtpack.load(path, trust_native_code=True)
        result["loaded"] = True
        outputs = loaded(*case["args"], **case["kwargs"])
        result["ran"] = True
        leaves = [t for t in pytree.tree_leaves(outputs) if isinstance(t, torch.Tensor)]
        result["output_type"] = type(outputs).__name__
        result["max_abs_error"] = max(float((a - b).abs().max()) for a, b in zip(leaves, case["expected"]))
        result["outputs_match"] = len(leaves) == len(case["expected"])
    except trtpack.TrtpackError as error:
        result["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
    result["library_imported"] = library in sys.modules
    print(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:4])
