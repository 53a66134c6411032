"""trtpack's version: the one place it is written. Compiled into core/ and stamped into the wheel."""

TRTPACK_VERSION = "0.2.0"
