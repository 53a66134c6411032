"""`bazel run //tools:export -- MODEL.py [flags]`: the same as `trtpack export MODEL.py [flags]`."""
import sys

from trtpack.cli import main as cli

if __name__ == "__main__":
    sys.argv.insert(1, "export")
    cli.main()
