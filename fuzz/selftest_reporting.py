"""Not a fuzz target: checks the harness plumbing itself (tests/reliability/test_fuzz.py runs it).

Seed b"raise": the target raises a non-trtpack exception, a finding, which must end as crash-*. Seed b"hang": the
target sleeps far past -timeout, which must end as timeout-*. The interpreter's teardown is made slow on purpose (as
with torch loaded, only longer than the 2 s alarm period of the -timeout=2 the test uses), so that a SIGALRM tick
always lands in it.
"""
import atexit
import gc
import time

from harness import main


class _SlowToFree:
    def __del__(self, sleep=time.sleep):
        sleep(3)


def _leave_slow_garbage() -> None:
    # A reference cycle: freed by the interpreter's last collection, which runs after it reset its signal handlers.
    gc.disable()
    slow = _SlowToFree()
    slow.cycle = slow


def test_one_input(data: bytes) -> None:
    if data == b"raise":
        raise ValueError("planted finding")
    if data == b"hang":
        time.sleep(20)


if __name__ == "__main__":
    atexit.register(_leave_slow_garbage)
    main(test_one_input)
