"""`trtpack triton ARTIFACT --repo DIR` (write a Triton model repository) and `trtpack tritonserver DIR` (start the
real tritonserver on it, with this Python serving the models): thin shells over trtpack.triton."""
import os
import sys

from absl import flags

flags.DEFINE_string("repo", None, "triton: the model repository folder to write into")
flags.DEFINE_string("name", None, "triton: the model's name (default: the artifact's file name without suffix)")
flags.DEFINE_integer("version", 1, "triton: the model version folder to write", lower_bound=1)
flags.DEFINE_integer("max_batch_size", None, "triton: Triton's max_batch_size (default: the compiled max of the "
                     "batch dim when every input and output has one; never above it; 0: no batching)", lower_bound=0)
flags.DEFINE_integer("instances", 1, "triton: model instances per device", lower_bound=1)
flags.DEFINE_enum("kind", "auto", ["auto", "cpu", "gpu"], "triton: instance kind: gpu (engines on the serving GPUs), "
                  "cpu (the PyTorch fallback), auto (gpu if every engine runs on this machine's GPU, else cpu)")
flags.DEFINE_integer("http_port", 8000, "tritonserver: HTTP port")
flags.DEFINE_integer("grpc_port", 8001, "tritonserver: gRPC port")
flags.DEFINE_integer("metrics_port", 8002, "tritonserver: metrics port")
flags.DEFINE_boolean("print_command", False, "tritonserver: print the command line (with its environment) instead "
                     "of starting the server")
FLAGS = flags.FLAGS


def write(artifact: str, repo: str) -> None:
    from trtpack.triton import write_repository

    model = write_repository(artifact, repo, FLAGS.name, version=FLAGS.version, max_batch_size=FLAGS.max_batch_size,
                             instances=FLAGS.instances, kind=FLAGS.kind, trust_native_code=FLAGS.trust_native_code)
    print(f"wrote {model} (config.pbtxt, {FLAGS.version}/); serve it with: trtpack tritonserver {repo}")


def serve(repo: str, extra: list) -> None:
    """Replaces this process with tritonserver (signals reach the server), or prints its command line."""
    from trtpack.triton import server

    argv, env = server.command(repo, http_port=FLAGS.http_port, grpc_port=FLAGS.grpc_port,
                               metrics_port=FLAGS.metrics_port, extra=extra, install=True)
    if FLAGS.print_command:
        print(server.shell_line(argv, env))
        return
    sys.stdout.flush()
    os.execve(argv[0], argv, {**os.environ, **env})
