"""The model Triton's Python backend runs for a repository written by `trtpack triton` (its model.py imports
TritonPythonModel from here). Runs inside the backend's stub process, where `triton_python_backend_utils` exists.

Tensors cross in both directions through DLPack, never NumPy: the stubs nvidia-pytriton ships were built for
NumPy 1, and with NumPy 2 an output made from an array gets the wrong byte size ("output tensor shape does not
match size of output"). DLPack also keeps GPU tensors on their device.
"""
import json
import os

import torch
import torch.utils._pytree as pytree

import trtpack
from trtpack.errors import TrtpackError


def check_devices(path: str, device: torch.device) -> None:
    """Refuses (TrtpackError with each engine's reason) an artifact whose engines can neither run on `device` nor
    fall back to PyTorch."""
    info = trtpack.inspect(path, device=device)
    stuck = [e for e in info["engines"] if not e["usable_here"] and not e["fallback"]]
    if stuck:
        raise TrtpackError(f"trtpack: {path!r} cannot run on this model instance's device ({device}): " +
                           "; ".join(f"engine {e['name']!r}: {e['reason']}" for e in stuck) +
                           " — and it has no PyTorch fallback. Serve it on GPUs its engines support "
                           "(instance_group KIND_GPU), or compile it with fallback=True.")


class TritonPythonModel:
    """One model instance: loads the artifact on the instance's device, runs each batch of requests through it."""

    def initialize(self, args):
        import triton_python_backend_utils as pb_utils  # only inside Triton's stub

        self.pb = pb_utils
        cfg = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in cfg.get("parameters", {}).items()}
        self.input_names = [t["name"] for t in cfg["input"]]
        self.output_names = [t["name"] for t in cfg["output"]]
        self.batched = cfg.get("max_batch_size", 0) > 0
        gpu = args["model_instance_kind"] == "GPU"
        self.device = torch.device("cuda", int(args["model_instance_device_id"])) if gpu else torch.device("cpu")
        path = os.path.join(args["model_repository"], args["model_version"], params["trtpack_artifact"])
        check_devices(path, self.device)
        self.module = trtpack.load(path, device=self.device if gpu else None,
                                   trust_native_code=params.get("trtpack_trust_native_code") == "true")

    def execute(self, requests):
        responses = [None] * len(requests)
        inputs = []
        for i, request in enumerate(requests):
            try:
                inputs.append((i, [torch.from_dlpack(self.pb.get_input_tensor_by_name(request, n).to_dlpack())
                                   for n in self.input_names]))
            except Exception as e:  # noqa: BLE001  (reported to that request's client)
                responses[i] = self._error(e)
        for group in self._groups(inputs):
            try:
                for i, outputs in zip([i for i, _ in group], self._run([tensors for _, tensors in group])):
                    responses[i] = self.pb.InferenceResponse(output_tensors=[
                        self.pb.Tensor.from_dlpack(n, torch.utils.dlpack.to_dlpack(t.contiguous()))
                        for n, t in zip(self.output_names, outputs)])
            except Exception as e:  # noqa: BLE001  (every request of the failed batch gets the error)
                for i, _ in group:
                    responses[i] = self._error(e)
        return responses

    def _groups(self, inputs: list) -> list:
        """Requests that can run as one batch: with batching, those whose inputs agree past the batch dim."""
        if not self.batched:
            return [[item] for item in inputs]
        groups = {}
        for item in inputs:
            key = tuple((tuple(t.shape[1:]), t.dtype) for t in item[1])
            groups.setdefault(key, []).append(item)
        return list(groups.values())

    def _run(self, batch: list) -> list:
        """Per request, its outputs: the requests' inputs concatenated on the batch dim, one call, split back."""
        sizes = [tensors[0].shape[0] if self.batched else None for tensors in batch]
        joined = [torch.cat(column) if len(batch) > 1 else column[0] for column in zip(*batch)]
        result = self.module(*[t.to(self.device) for t in joined])
        outputs = pytree.tree_leaves(result)
        if len(outputs) != len(self.output_names):
            raise TrtpackError(f"trtpack: the model returned {len(outputs)} tensors, its config names "
                               f"{len(self.output_names)} ({', '.join(self.output_names)}); write the repository "
                               "again from this artifact.")
        if len(batch) == 1:
            return [outputs]
        return list(zip(*[torch.split(t, sizes) for t in outputs]))

    def _error(self, error: Exception):
        text = str(error) if isinstance(error, TrtpackError) else f"{type(error).__name__}: {error}"
        return self.pb.InferenceResponse(output_tensors=[], error=self.pb.TritonError(text))

    def finalize(self):
        self.module = None
