"""Serving with Triton Inference Server: a model repository from any trtpack artifact, and the real server.

  repository.py  write_repository(artifact, repo, ...): config.pbtxt + version folder (model.py + the artifact)
  config.py      the config.pbtxt text: names, data types, dims, batching, instance groups
  backend.py     the model Triton's Python backend runs (model.py imports it): trtpack.load, then serve
  server.py      the tritonserver binary from nvidia-pytriton: install, private backends folder, command, running()

CLI: `trtpack triton ARTIFACT --repo DIR`, then `trtpack tritonserver DIR` (README: "Serving with Triton").
"""
from trtpack.triton.repository import model_spec, write_repository

__all__ = ["model_spec", "write_repository"]
