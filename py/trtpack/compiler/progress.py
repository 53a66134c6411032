"""What a long compile is doing, as it happens: each stage and region step with its time and the elapsed total,
written only when stdout is a terminal (nothing at all otherwise)."""
import contextlib
import sys
import time


class Progress:
    def __init__(self, stream=None):
        self.stream = stream if stream is not None else sys.stdout
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.perf_counter()
        self.seconds = {}  # stage name -> seconds, whether shown or not

    def _write(self, text: str, done: bool) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.started
        # A running step is shown on one line that the finished step then overwrites.
        self.stream.write(f"\r\033[Ktrtpack [{elapsed:6.1f}s] {text}" + ("\n" if done else ""))
        self.stream.flush()

    @contextlib.contextmanager
    def stage(self, name: str):
        """Shows `name …` while it runs, then `name 1.23s`."""
        self._write(f"{name} ...", done=False)
        start = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - start
        self._write(f"{name} {self.seconds[name]:.2f}s", done=True)

    def step(self, region: str, what: str, seconds: float) -> None:
        """A finished region step, e.g. ('trt_region_0', 'cache miss', 0.01)."""
        self._write(f"{region}: {what} {seconds:.2f}s", done=True)
