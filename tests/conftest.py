import os
import subprocess
import sys
from pathlib import Path

import pytest

import bench  # noqa: F401  before anything imports torch: bench pins the numerics knobs torch reads when it loads

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def run_bench(*args: str, cwd: Path, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess (as a user would), capturing its output."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def tiny_suite(tmp_path):
    """Write a small suite file and return a function that writes variants of it."""

    def write(body: str, name: str = "tiny.yaml") -> Path:
        path = tmp_path / name
        path.write_text(body)
        return path

    return write


def bench_cli(*args: str, cwd: Path, env: dict | None = None, timeout: float | None = None
              ) -> subprocess.CompletedProcess:
    """Run the CLI's `main` in this process, as `run_bench` runs it in a subprocess: the same exit code, stdout and
    stderr (log lines included), without starting an interpreter and importing torch again. For error paths and
    short commands; a test of what only a real process shows (signals, two processes, a terminal) uses run_bench.
    `timeout` is accepted for symmetry with run_bench and not enforced."""
    import contextlib
    import io
    import logging

    import torch

    from bench import cli

    out, err = io.StringIO(), io.StringIO()
    saved_env = {k: os.environ.get(k) for k in (env or {})}
    saved_argv, saved_cwd, saved_threads = sys.argv, Path.cwd(), torch.get_num_threads()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    handler = logging.StreamHandler(err)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.handlers, root.level = [handler], logging.WARNING
    os.environ.update(env or {})
    sys.argv = ["bench", *args]
    os.chdir(cwd)
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main()
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    finally:
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        torch.set_num_threads(saved_threads)  # --threads must not leak into the next test's numbers
        root.handlers, root.level = saved_handlers, saved_level
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return subprocess.CompletedProcess(["bench", *args], code, out.getvalue(), err.getvalue())
