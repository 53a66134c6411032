"""trtpack's error types. Every message says what is wrong and what to do about it."""


class TrtpackError(Exception):
    """Base of every error trtpack raises on purpose."""


class FormatError(TrtpackError, ValueError):
    """A file or engine record is malformed, truncated, or of a format version this trtpack cannot read."""


class IncompatibleEngineError(TrtpackError, RuntimeError):
    """An engine cannot run here (no CUDA device, wrong compute capability, missing or different backend)."""


class UnsupportedGraphError(TrtpackError, ValueError):
    """A graph (or part of one that must be converted) uses operations trtpack cannot hand to TensorRT."""


class UntrustedCodeError(TrtpackError, PermissionError):
    """The artifact holds native code (an AOTInductor package) and the caller did not opt in to running it
    (trust_native_code=True, CLI --trust_native_code)."""
