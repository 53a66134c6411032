"""trtpack command line: export | inspect | run | extract.

  trtpack export MODEL.py [--out DIR] [--formats ep,pt2,engine] [--[no]fallback] [--targets sm86,sm89]
                          [--min_block_size N] [--[no]verify]
  trtpack inspect FILE [--json]
  trtpack run FILE [--inputs F.safetensors] [--iterations N]
  trtpack extract FILE.ep --engine NAME -o OUT.engine

Exit codes: 0 ok; 1 other trtpack error; 2 bad input (usage, model file, unreadable artifact);
3 unsupported graph; 4 verification or round-trip mismatch; 5 engine cannot run here.
"""
import json
import logging
import os
import sys
import warnings

from absl import app, flags

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_UNSUPPORTED, EXIT_MISMATCH, EXIT_INCOMPATIBLE = range(6)
COMMANDS = ("export", "inspect", "run", "extract")

flags.DEFINE_string("out", None, "export: output folder (default out/<model>); extract: the .engine to write",
                    short_name="o")
flags.DEFINE_list("formats", ["ep", "pt2", "engine"], "export: artifact formats to write")
flags.DEFINE_boolean("fallback", True, "export: keep a PyTorch reference branch so artifacts run where TensorRT can't")
flags.DEFINE_list("targets", None, "export: compute capabilities to build for, e.g. sm86,sm89 (default: backend's)")
flags.DEFINE_integer("min_block_size", None, "export: smallest number of ops worth an engine")
flags.DEFINE_boolean("verify", True, "export: check each region's ONNX with onnxruntime against PyTorch")
flags.DEFINE_boolean("json", False, "inspect: print JSON")
flags.DEFINE_string("inputs", None, "run: safetensors file with inputs in.0, in.1, ... (default: random)")
flags.DEFINE_integer("iterations", 20, "run: timed iterations")
flags.DEFINE_string("engine", None, "extract: name of the engine to extract")
FLAGS = flags.FLAGS


def _usage(problem: str) -> int:
    print(f"trtpack: {problem}\n{__doc__}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _exit_code(error) -> int:
    import trtpack
    from trtpack.model_file import ModelFileError

    if isinstance(error, (ModelFileError, trtpack.FormatError)):
        return EXIT_BAD_INPUT
    if isinstance(error, trtpack.UnsupportedGraphError):
        return EXIT_UNSUPPORTED
    if isinstance(error, trtpack.IncompatibleEngineError):
        return EXIT_INCOMPATIBLE
    return EXIT_ERROR


def _resolve(path: str) -> str:
    # Under `bazel run` the working directory is the runfiles tree; paths are the user's.
    base = os.environ.get("BUILD_WORKING_DIRECTORY", "")
    return os.path.join(base, path) if base and not os.path.isabs(path) else path


def main_with_args(argv) -> int:
    if len(argv) < 2 or argv[1] not in COMMANDS:
        return _usage(f"expected a command ({', '.join(COMMANDS)})" + (f", got {argv[1]!r}" if len(argv) > 1 else ""))
    command, rest = argv[1], [_resolve(a) for a in argv[2:]]
    if len(rest) != 1:
        return _usage(f"{command} takes exactly one file, got {len(rest)}: {rest}")
    import trtpack

    try:
        if command == "export":
            from trtpack import export_tool
            ok = export_tool.export(rest[0], out=_resolve(FLAGS.out) if FLAGS.out else None,
                                    formats=FLAGS.formats, fallback=FLAGS.fallback, targets=FLAGS.targets,
                                    min_block_size=FLAGS.min_block_size, verify=FLAGS.verify)
            return EXIT_OK if ok else EXIT_MISMATCH
        if command == "inspect":
            info = trtpack.inspect(rest[0])
            print(json.dumps(info, indent=2) if FLAGS.json else format_inspect(info))
            return EXIT_OK
        if command == "run":
            from trtpack import export_tool
            export_tool.run(rest[0], inputs=_resolve(FLAGS.inputs) if FLAGS.inputs else None,
                            iterations=FLAGS.iterations)
            return EXIT_OK
        if not FLAGS.engine or not FLAGS.out:
            return _usage("extract needs --engine NAME and -o OUT.engine")
        from trtpack import export_tool
        export_tool.extract(rest[0], FLAGS.engine, _resolve(FLAGS.out))
        return EXIT_OK
    except trtpack.TrtpackError as e:
        print(str(e), file=sys.stderr)
        return _exit_code(e)


def format_inspect(info: dict) -> str:
    lines = [f"{info['path']}: {info['format']}, {info['size']:,} bytes, trtpack {info.get('trtpack_version')}, "
             f"torch {info.get('torch_version')}"]
    if "inputs" in info:
        lines.append(f"  inputs: {', '.join(info['inputs'])}   outputs: {', '.join(info['outputs'])}")
    for sym, (lo, hi) in info.get("symbols", {}).items():
        lines.append(f"  symbol {sym}: [{lo}, {'inf' if hi is None else hi}]")
    for e in info["engines"]:
        lines.append(f"  engine {e['name']}: {e['backend']} {e['backend_version']}, targets {','.join(e['targets'])}, "
                     f"plan {e['plan_size']:,} bytes, sha256 {e['plan_sha256'][:16]}…, "
                     f"fallback {'yes' if e['fallback'] else 'no'}")
        for kind in ("inputs", "outputs"):
            specs = ", ".join(f"{t['name']}:{t['dtype']}{list(t['shape'])}" for t in e[kind])
            lines.append(f"    {kind}: {specs}")
        lines.append(f"    here: {'usable' if e['usable_here'] else 'not usable'}" +
                     (f" — {e['reason']}" if e["reason"] else ""))
    lines.append(f"  runs on this machine: {'yes' if info['runs_here'] else 'no'}")
    return "\n".join(lines)


def _quiet_libraries() -> None:
    # The ONNX exporter and torch log their internals at INFO/WARNING; the user wants trtpack's summary.
    logging.getLogger().setLevel(logging.WARNING)
    for name in ("torch", "torch.onnx", "onnxscript", "onnx_ir"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def _absl_main(argv):
    _quiet_libraries()
    sys.exit(main_with_args(argv))


def main():
    app.run(_absl_main)


if __name__ == "__main__":
    main()
