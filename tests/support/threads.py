"""Running one piece of test work in several threads at once."""
import threading


def run_in_threads(work, arguments) -> list:
    """Runs `work(*args)` in one thread per entry of `arguments`, all released together; returns what they raised."""
    barrier, errors = threading.Barrier(len(arguments)), []

    def run(*args):
        try:
            barrier.wait()
            work(*args)
        except Exception as error:  # noqa: BLE001  (returned to the test, which asserts there are none)
            errors.append(error)

    threads = [threading.Thread(target=run, args=args) for args in arguments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors
