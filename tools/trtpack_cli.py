"""`bazel run //tools:trtpack -- COMMAND ...`: the `trtpack` console command from a source checkout."""
from trtpack.cli import main as cli

if __name__ == "__main__":
    cli.main()
