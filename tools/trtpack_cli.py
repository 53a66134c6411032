"""`bazel run //tools:trtpack -- COMMAND ...`: the `trtpack` console command from a source checkout."""
from trtpack import cli

if __name__ == "__main__":
    cli.main()
