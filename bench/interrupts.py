"""Ctrl-C as bench treats it: the first asks the running trial to checkpoint after its step and stop; the second
stops at once."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def ctrl_c_stops_training(quiet: bool = False) -> Iterator[Callable[[], bool]]:
    """The first Ctrl-C asks the running trial to checkpoint after its current step and stop; a second one stops
    at once (the steps since the last checkpoint are then lost). Only the main thread can take signals. `quiet`:
    say nothing (parallel workers: the parent says it once)."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    requested = threading.Event()

    def handler(signum, frame):
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()
        if not quiet:
            os.write(2, b"\nstopping after this step (Ctrl-C again to stop at once and lose the steps since the "
                        b"last checkpoint)\n")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield requested.is_set
    finally:
        signal.signal(signal.SIGINT, previous)
