"""Shared by the atheris harnesses: quiet torch, and the one rule every target checks.

The rule: for any input, trtpack either succeeds or raises a TrtpackError subclass. Anything else propagates, and
atheris reports it as a crash (with the input saved as crash-*). Hangs (-timeout) and huge allocations
(-rss_limit_mb) are reported by libFuzzer itself.
"""
import atexit
import logging
import os
import signal
import sys
import warnings

import atheris

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def quiet() -> None:
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")


def trtpack_or_error(fn, *args):
    """Runs fn; a TrtpackError is the expected outcome of bad input, so it is swallowed."""
    from trtpack.errors import TrtpackError

    try:
        return fn(*args)
    except TrtpackError:
        return None


def _stop_timeout_alarm() -> None:
    # A finding (uncaught exception) exits through sys.exit: Python's finalization resets SIGALRM to its default
    # (kill) while libFuzzer's -timeout interval timer still ticks, and libFuzzer writes crash-* only after
    # finalization. A tick in between killed the process (rc -14) and lost the finding. Python atexit functions run
    # before that reset; fuzzing is over by then, so no input's timeout is lost.
    signal.setitimer(signal.ITIMER_REAL, 0)


def main(test_one_input) -> None:
    quiet()
    atheris.Setup(sys.argv, test_one_input)
    atexit.register(_stop_timeout_alarm)
    atheris.Fuzz()
