"""The `trtpack` command, a thin shell over the library: main.py parses flags and maps errors to exit codes;
export.py and artifact_commands.py do the work; model_file.py reads MODEL.py; roundtrip.py checks an artifact in a
fresh process."""
