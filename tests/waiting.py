"""Polling helper for tests that watch threads and processes."""

import time


def wait_for(predicate, timeout: float = 5.0) -> bool:
    """True as soon as ``predicate()`` is, False if it is not within ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.005)
    return False
