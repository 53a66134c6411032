"""trtpack command line: export | inspect | run | extract | cache | triton | tritonserver.

  trtpack export MODEL.py [--out DIR] [--formats ep,pt2,engine] [--[no]fallback] [--targets sm86,sm89]
                          [--min_block_size N] [--[no]verify] [--nocache]
  trtpack inspect FILE [--json]
  trtpack run FILE [--inputs F.safetensors] [--iterations N] [--trust_native_code]
  trtpack extract FILE --engine NAME -o OUT.engine
  trtpack cache info|clear              the program and engine caches ($TRTPACK_CACHE_DIR/programs and /engines,
                                        default ~/.cache/trtpack)
  trtpack triton ARTIFACT --repo DIR [--name NAME] [--version N] [--max_batch_size N] [--instances N]
                          [--kind auto|cpu|gpu] [--trust_native_code]     write a Triton model repository
  trtpack tritonserver DIR [--http_port N] [--grpc_port N] [--metrics_port N] [--print_command] [-- SERVER_ARGS]
                                        start the real tritonserver on DIR (installs it the first time)

Every command takes every format (.ep, .pt2, .engine), read from the file's bytes, not its name.
Exit codes: 0 ok; 1 other trtpack error; 2 bad input (usage, model file, unreadable or untrusted artifact);
3 unsupported graph; 4 verification or round-trip mismatch; 5 engine cannot run here. (export: an artifact that fails to load is 1.)
"""
import json
import logging
import os
import sys
import warnings

from absl import app, flags

from trtpack.cli import triton_command  # noqa: F401  (defines the triton commands' flags)

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_UNSUPPORTED, EXIT_MISMATCH, EXIT_INCOMPATIBLE = range(6)
COMMANDS = ("export", "inspect", "run", "extract", "cache", "triton", "tritonserver")

flags.DEFINE_string("out", None, "export: output folder (default out/<model>); extract: the .engine to write",
                    short_name="o")
flags.DEFINE_list("formats", ["ep", "pt2", "engine"], "export: artifact formats to write")
flags.DEFINE_boolean("fallback", True, "export: keep a PyTorch reference branch so artifacts run where TensorRT can't")
flags.DEFINE_list("targets", None, "export: compute capabilities to build for, e.g. sm86,sm89 (default: backend's)")
flags.DEFINE_integer("min_block_size", None, "export: smallest number of ops worth an engine")
flags.DEFINE_boolean("verify", True, "export: check each region's ONNX with onnxruntime against PyTorch")
flags.DEFINE_boolean("cache", True, "export: reuse and keep compiled programs and built plans in the program and "
                     "engine caches (--nocache: neither)")
flags.DEFINE_boolean("json", False, "inspect: print JSON")
flags.DEFINE_string("inputs", None, "run: safetensors file with inputs in.0, in.1, ... (default: random)")
flags.DEFINE_integer("iterations", 20, "run: timed iterations")
flags.DEFINE_string("engine", None, "extract: name of the engine to extract")
flags.DEFINE_boolean("trust_native_code", False,
                     "run, triton: allow an AOTInductor package (.pt2) to load its compiled library")
FLAGS = flags.FLAGS


def _usage(problem: str) -> int:
    print(f"trtpack: {problem}\n{__doc__}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _exit_code(error) -> int:
    import trtpack
    from trtpack.cli.model_file import ModelFileError

    if isinstance(error, (ModelFileError, trtpack.FormatError, trtpack.UntrustedCodeError)):
        return EXIT_BAD_INPUT
    if type(error).__name__ == "VerificationError":  # compiler.onnx_export's; importing it here would load the compiler
        return EXIT_MISMATCH
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
    if command == "cache":
        return _cache(argv[2:])
    if command == "tritonserver" and rest:
        rest = rest[:1] + list(argv[3:])  # tritonserver's own arguments (after --) are not paths of ours
    elif command == "triton" and not FLAGS.repo:
        return _usage("triton needs --repo DIR, the model repository to write into")
    if len(rest) != 1 and not (command == "tritonserver" and rest):
        return _usage(f"{command} takes exactly one file, got {len(rest)}: {rest}")
    import trtpack
    from trtpack.cli import artifact_commands

    try:
        if command == "export":
            from trtpack.cli import export
            result = export.export(rest[0], out=_resolve(FLAGS.out) if FLAGS.out else None,
                                    formats=FLAGS.formats, fallback=FLAGS.fallback, targets=FLAGS.targets,
                                    min_block_size=FLAGS.min_block_size, verify=FLAGS.verify, cache=FLAGS.cache)
            return {"ok": EXIT_OK, "mismatch": EXIT_MISMATCH, "failed": EXIT_ERROR}[result]
        if command == "inspect":
            info = trtpack.inspect(rest[0])
            print(json.dumps(info, indent=2) if FLAGS.json else artifact_commands.format_inspect(info))
            return EXIT_OK
        if command == "triton":
            triton_command.write(rest[0], _resolve(FLAGS.repo))
            return EXIT_OK
        if command == "tritonserver":
            triton_command.serve(rest[0], rest[1:])
            return EXIT_OK
        if command == "run":
            artifact_commands.run(rest[0], inputs=_resolve(FLAGS.inputs) if FLAGS.inputs else None,
                                  iterations=FLAGS.iterations, trust_native_code=FLAGS.trust_native_code)
            return EXIT_OK
        if not FLAGS.engine or not FLAGS.out:
            return _usage("extract needs --engine NAME and -o OUT.engine")
        artifact_commands.extract(rest[0], FLAGS.engine, _resolve(FLAGS.out))
        return EXIT_OK
    except trtpack.TrtpackError as e:
        print(str(e), file=sys.stderr)
        return _exit_code(e)


def _cache(args) -> int:
    if args not in (["info"], ["clear"]):
        return _usage(f"cache takes info or clear, got {args}")
    from trtpack.compiler import engine_cache

    if args == ["clear"]:
        print(f"removed {engine_cache.clear()} entries from {engine_cache.info()['path']}")
        return EXIT_OK
    info = engine_cache.info()
    if FLAGS.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    print(f"{info['path']}: {info['entries']} entries, {info['bytes']:,} bytes (cap {info['max_bytes']:,} bytes for "
          "both folders; TRTPACK_CACHE_DIR moves it, TRTPACK_CACHE_MAX_MB caps it)")
    for name, folder in info["folders"].items():
        print(f"  {name}: {folder['entries']} entries, {folder['bytes']:,} bytes")
    return EXIT_OK


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


HELP_FLAGS = ("-h", "--help", "-help", "--helpshort", "help")


def help_text() -> str:
    """The commands (this module's docstring) and the flags they take: what `trtpack --help` prints."""
    return f"{__doc__.strip()}\n\nFlags:\n{FLAGS.module_help(__name__)}\n"


def main():
    if any(arg in HELP_FLAGS for arg in sys.argv[1:]):  # absl's own --help would print "USAGE: ... [flags]"
        print(help_text())
        sys.exit(EXIT_OK)
    app.run(_absl_main)


if __name__ == "__main__":
    main()
