"""Progress a person can see: on a terminal, one status line that rewrites itself under the permanent lines;
in a log (stdout not a terminal), plain lines at fixed milestones only, so CI output stays readable.

Torch-free and dependency-free: `bench perf train` runs where only torch, typer, pydantic and yaml exist.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO


def duration(seconds: float) -> str:
    """12s, 4m05s, 2h07m."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Console:
    """Permanent lines (`say`) and, on a terminal, one live status line (`status`) kept beneath them."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None, milestones: bool = True):
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.milestones = milestones  # False: a log gets no progress lines (parallel workers: start and end only)
        self._shown = False

    def say(self, line: str) -> None:
        self._clear()
        self.stream.write(line + "\n")
        self.stream.flush()

    def status(self, text: str) -> None:
        if not self.live:
            return
        width = shutil.get_terminal_size((100, 20)).columns - 1
        self.stream.write("\r" + text[:width] + "\x1b[K")
        self.stream.flush()
        self._shown = True

    def done(self) -> None:
        self._clear()

    def _clear(self) -> None:
        if self._shown:
            self.stream.write("\r\x1b[K")
            self._shown = False


class StepProgress:
    """Progress of one counted job (training steps, images through Inception, pages crawled).

    On a terminal every update redraws the status line; in a log a line is printed each time another tenth of
    the total is done, so a trial writes at most ten progress lines.
    """

    def __init__(self, console: Console, prefix: str, total: int, unit: str = "steps", start: int = 0):
        self.console, self.prefix, self.total, self.unit = console, prefix, max(total, 1), unit
        self.start_count, self.start_time = start, time.perf_counter()
        self.next_milestone = (start * 10 // self.total + 1)

    def update(self, done: int, detail: str = "") -> None:
        elapsed = time.perf_counter() - self.start_time
        rate = (done - self.start_count) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else None
        # most telling first: a narrow terminal cuts the end of the line
        text = (f"{self.prefix}: {done}/{self.total} {self.unit} ({100 * done // self.total}%)"
                + (f", ETA {duration(eta)}" if eta is not None else "") + (f", {detail}" if detail else ""))
        if self.console.live:
            self.console.status(text)
        elif self.console.milestones and done * 10 // self.total >= self.next_milestone and done < self.total:
            self.next_milestone = done * 10 // self.total + 1
            self.console.say(text)
