import atexit
import functools
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# Ray reads this when it is imported, by any test: its `uv run` hook would start workers in an environment without
# Ray (bench.executors.ray_tasks.import_ray sets it too, for bench's own imports)
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

# Where the environment forbids writing bytecode beside the sources (PYTHONDONTWRITEBYTECODE, as on the 2-core dev
# machine), every `python -m bench` a test starts compiled torch, MLflow and bench from source again: ~17 s of a
# start instead of ~7, and the test process compiled them too. Tests keep that bytecode in the system's temporary
# folder instead (never in the repository or the environment), as Python keeps it in __pycache__ elsewhere: this
# process for what it imports from here on, and every process it starts.
if os.environ.get("PYTHONDONTWRITEBYTECODE") and not os.environ.get("PYTHONPYCACHEPREFIX"):
    del os.environ["PYTHONDONTWRITEBYTECODE"]
    os.environ["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), f"bench-tests-pycache-{os.getuid()}")
    sys.pycache_prefix, sys.dont_write_bytecode = os.environ["PYTHONPYCACHEPREFIX"], False

# pytest-xdist's workers (pyproject.toml: 2) inherit the environment of the controller, whose bench already pinned the
# numerics knobs: without this they would take bench's values for the user's, and a process started "native" from a
# worker would keep them. The controller hands the user's own values on; a worker puts them back before bench loads.
USER_ENV = "BENCH_TESTS_USER_ENV"
if os.environ.get("PYTEST_XDIST_WORKER") and USER_ENV in os.environ and "bench" not in sys.modules:  # once: test
    # modules import this file again as tests.conftest, after bench pinned
    import json

    for _name, _value in json.loads(os.environ[USER_ENV]).items():
        if _value is None:
            os.environ.pop(_name, None)
        else:
            os.environ[_name] = _value

import bench  # noqa: E402, F401  (bench before torch in every test process: it pins numerics knobs before torch loads)

if USER_ENV not in os.environ:  # the controller (or a run without workers): what the user had before bench pinned
    import json

    os.environ[USER_ENV] = json.dumps(bench.numerics._USER_ENV)

importlib.import_module("torch")  # loaded here, with bench's knobs in the environment
bench.numerics.command_defaults()  # what a command of bench computes with: the in-process tests are such commands

# libgomp reads OMP_WAIT_POLICY once, when torch loads it (just now, above). This process keeps the default (a
# thread spins a while for the next parallel region, then sleeps): PASSIVE here made the in-process trainings of
# small nets 5x slower (a 550-step cdcgan 77 s instead of 14: every region waits for a sleeping thread's wake-up).
# The processes a test starts get PASSIVE: they often train two or three at once on 2 cores, where spinning threads
# steal each other's cores (two such cdcgans side by side: 164 s each spinning, 21 s passive). No number changes
# either way (same threads, same partition of the work), only the waiting. A value already set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]

# Markers by requirement, beside `slow` (pyproject.toml): `process` (the test starts another process: bench, a
# browser, an emulator, a server, a worker pool), `inception` (the real Inception network, ~100 MB of weights and
# ~0.1 s an image), and the tools a machine may lack: `ray`, `postgres`, `chromium`, `qemu` (skipped where absent,
# a failure where CI's BENCH_REQUIRE_* says they must be there: tests/support.py REQUIREMENTS). `process` and, in
# this process, `inception` are checked: a test that starts a process or loads the network unmarked fails (a bench
# process that loads Inception is marked by hand).
_used: set[str] = set()


# what is asked in passing, not a process to mark: the commit a record names (bench), the physical cores
# (scikit-learn's k-means, through joblib's loky, once per process)
CHEAP = (b"git", "git", b"lscpu", "lscpu")


def _noting(what: str, real):
    def call(*args, **kwargs):
        program = os.path.basename(args[0][0]) if what == "process" and args and args[0] else None
        if program not in CHEAP:
            _used.add(what)
        return real(*args, **kwargs)
    return call


import _posixsubprocess  # noqa: E402  (multiprocessing's spawn; subprocess keeps its own reference)

subprocess._fork_exec = _noting("process", subprocess._fork_exec)
_posixsubprocess.fork_exec = _noting("process", _posixsubprocess.fork_exec)
if hasattr(subprocess, "_posix_spawn"):
    subprocess._USE_POSIX_SPAWN = False  # one way to start a process, the one counted above


def _note_inception() -> None:
    import bench.metrics.evaluate
    import bench.metrics.inception
    import bench.metrics.translation

    counted = _noting("inception", bench.metrics.inception.load_feature_network)
    for module in (bench.metrics.inception, bench.metrics.evaluate, bench.metrics.translation):
        module.load_feature_network = counted


_note_inception()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Before the test's fixtures: a module fixture that starts a server counts for the first test that uses it."""
    from tests.support import REQUIREMENTS, require

    _used.clear()
    for name in REQUIREMENTS:
        if item.get_closest_marker(name):
            require(name)


@pytest.fixture(autouse=True)
def _markers_say_what_a_test_needs(request):
    yield
    for name, what in (("process", "starts a process"), ("inception", "loads the real Inception network")):
        if name in _used and not request.node.get_closest_marker(name):
            pytest.fail(f"this test {what}: mark it @pytest.mark.{name} (tests/conftest.py)")


def run_bench(*args: str, cwd: Path, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess (as a user would), capturing its output. It costs ~8 s on 2 cores before bench
    does anything (an interpreter, torch, MLflow): only for what a real process shows (signals, SIGKILL, two
    processes at once, a terminal, a closed pipe, worker processes); everything else goes through `bench_cli`."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


@functools.cache
def _empty_store() -> Path:
    from mlflow.tracking import MlflowClient

    from bench.tracking import import_mlflow

    import_mlflow()  # bench's logging levels: MLflow's "Creating initial MLflow database tables" stays quiet
    path = Path(tempfile.mkdtemp(prefix="bench-tests-store-")) / "mlflow.db"
    atexit.register(shutil.rmtree, path.parent, True)  # at exit: test modules import this file as tests.conftest too
    saved = Path.cwd()
    os.chdir(path.parent)  # MLflow's Default experiment points at ./mlruns of the folder the store was made in
    try:
        MlflowClient(f"sqlite:///{path}").search_experiments()
    finally:
        os.chdir(saved)
    return path


def sqlite_store(folder: Path, name: str = "mlflow.db") -> str:
    """A tracking store for a test: a copy of an empty SQLite store made once per session (creating one runs MLflow's
    schema migrations, ~4 s on 2 cores). A test about creating a store (two processes on a fresh one) writes its own
    URI instead. Called again for the same folder, it keeps what is there."""
    path = Path(folder) / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_empty_store(), path)
    return f"sqlite:///{path}"


@pytest.fixture
def tiny_suite(tmp_path):
    """Write a small suite file and return a function that writes variants of it."""

    def write(body: str, name: str = "tiny.yaml") -> Path:
        path = tmp_path / name
        path.write_text(body)
        return path

    return write


def _forget_relative_sqlite_stores() -> None:
    """MLflow keeps a store and a SQLAlchemy engine per URI string for the life of the process: a relative
    `sqlite:///mlflow.db` (bench's default store) would go on writing to the folder of the first command that opened
    it, whatever the next test's working folder. A process of `bench` has one working folder; here each command
    starts from none."""
    if "mlflow.store.tracking.sqlalchemy_store" not in sys.modules:
        return
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry

    type(_tracking_store_registry)._get_store_with_resolved_uri.cache_clear()
    with SqlAlchemyStore._engine_map_lock:
        for uri in [u for u in SqlAlchemyStore._engine_map if u.startswith("sqlite:///") and
                    not u.startswith("sqlite:////")]:
            SqlAlchemyStore._engine_map.pop(uri).dispose()


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
    _forget_relative_sqlite_stores()
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main()
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    finally:
        _forget_relative_sqlite_stores()
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


@pytest.fixture
def tiny_inception(monkeypatch):
    """Inception replaced, in this process, by a small fixed random network with the same interface (FID plumbing
    at a few ms per image instead of ~125 ms): for tests of what surrounds FID, not of Inception's numbers. Tests of
    the real network are in test_metrics_inception.py and test_golden.py. Subprocesses still load the real one."""
    import torch

    class TinyNet(torch.nn.Module):
        """(B, 3, 299, 299) in [-1, 1) -> (B, 2048): average pooling and a fixed random projection; counts the
        images it saw in `images_seen`."""

        def __init__(self):
            super().__init__()
            self.register_buffer("proj", torch.randn(192, 2048, generator=torch.Generator().manual_seed(0)) / 14)
            self.images_seen = 0

        def forward(self, x):
            self.images_seen += x.shape[0]
            return torch.tanh(torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1) @ self.proj)

    net = TinyNet()
    for module in ("bench.metrics.evaluate", "bench.metrics.translation"):
        monkeypatch.setattr(f"{module}.load_feature_network", lambda device="cpu", path=None: (net, "f" * 64))
    return net
