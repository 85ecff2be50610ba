"""The local executor: jobs one after another in this process (the default)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.errors import Interrupted
from bench.executors.base import Context, Job, Slot
from bench.progress import Console


class LocalExecutor:
    def __init__(self, console: Console, say: Callable[[str], None] | None = None, slot: Slot = Slot(None),
                 cache: dict | None = None):
        self.console, self.say, self.slot = console, say or console.say, slot
        self.cache = cache if cache is not None else {}  # what the caller has loaded already (its datasets)

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc) -> None:
        pass

    in_process, live_status = True, False

    def capacity(self) -> int:
        return 1

    def workers_line(self, n: int, what: str) -> str | None:
        return None

    def run(self, jobs: list[Job], on_result: Callable[[Job, Any], None], stop_requested: Callable[[], bool],
            status: Callable[[], None] | None = None) -> list[str]:
        ctx = Context(self.slot, self.say, self.console, stop_requested, self.cache)
        queue, follow_ups = list(jobs), []
        for source in (queue, follow_ups):  # follow-ups (a trial another process holds) once the queue is done
            while source:
                if stop_requested():
                    return []
                job = source.pop(0)
                try:
                    result = job(ctx)
                except Interrupted as stop:
                    return [str(stop)]
                if (follow := job.follow_up(result)) is not None:
                    follow_ups.append(follow)
                    continue
                on_result(job, result)
                if status is not None:
                    status()
        return []
