"""Ctrl-C as bench treats it: the first asks the running trial to checkpoint after its step and stop; the second
stops at once. SIGTERM (a scheduler, `kill`, a container stop) is a first Ctrl-C with a deadline: after
`TERM_GRACE` seconds the running work stops at once, so a bench process given SIGTERM exits within seconds whatever
it runs (an evaluation can take minutes), its records saying interrupted."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

TERM_GRACE = 15.0  # seconds between SIGTERM and stopping at once
_terminated = threading.Event()


def terminated() -> bool:
    """Whether this process was sent SIGTERM (executors forward it to their workers)."""
    return _terminated.is_set()


@contextmanager
def ctrl_c_stops_training(quiet: bool = False, grace: float = TERM_GRACE) -> Iterator[Callable[[], bool]]:
    """The first Ctrl-C asks the running trial to checkpoint after its current step and stop; a second one stops
    at once (the steps since the last checkpoint are then lost). SIGTERM asks the same and stops at once after
    `grace` seconds. Only the main thread can take signals. `quiet`: say nothing (parallel workers: the parent
    says it once)."""
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

    def on_term(signum, frame):
        _terminated.set()
        requested.set()
        if not quiet:
            os.write(2, f"\nterminated (SIGTERM): stopping after this step, at once in {grace:.0f} s\n".encode())
        signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, grace)

    def alarm(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    previous_term = signal.signal(signal.SIGTERM, on_term)
    try:
        yield requested.is_set
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
