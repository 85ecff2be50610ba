"""Every failure a user can cause, met the way a user meets it: through the CLI's entry point, in this process
(`bench_cli`) where a real process adds nothing, and in a real one (`run_bench`, Popen) for what only a process
shows: a crash's traceback kept off the terminal, a pipe closed early, two processes at once, Ctrl-C, a terminal.
Each ends in one line (exit code 2 for bad input, 1 for a failed trial or a bug, 130 for Ctrl-C), with no
traceback, and loses nothing already computed."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.errors import BenchError
from tests.conftest import bench_cli, sqlite_store
from tests.support import TINY, bench_main, mlflow_runs, one_line_error, tiny


def store(folder: Path) -> str:
    """The test's SQLite store, made from conftest's empty one (a test about a fresh store writes its own URI)."""
    return sqlite_store(folder)


def status_of(runs: Path, suite: str) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in (runs / suite).glob("*/status.json")}


# MLflow retries an unreachable server with growing waits (bench's defaults: 3 retries, ~7 s per call); a user's
# own settings win, and these tests need no retry to see a store refused or records kept and sent later
NO_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# 1. the error handler ---------------------------------------------------------------------------------------------

BUG = """
import sys
from bench import cli

@cli.app.command("boom")
def boom():
    raise RuntimeError("a bug\\nwith a second line")

sys.argv = ["bench", "boom"]
cli.main()
"""


@pytest.mark.slow
@pytest.mark.process
def test_a_bug_in_bench_is_one_line_naming_the_saved_traceback(tmp_path):
    """A real process: what reaches the terminal from a crash is the one line, never Python's own traceback."""
    result = subprocess.run([sys.executable, "-c", BUG], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "BENCH_CACHE": str(tmp_path / "cache")})
    line = one_line_error(result, 1)
    assert line.startswith("error: internal error (RuntimeError: a bug); this is a bug in bench")
    saved = Path(line.split("traceback in ")[1].rstrip(")"))
    assert saved.is_relative_to(tmp_path / "cache") and "Traceback" in saved.read_text()


def test_a_huge_seed_is_refused_before_training(tmp_path):
    suite = tiny(tmp_path)
    suite.write_text(suite.read_text().replace("seeds: 1", "seeds: [18446744073709551616]"))
    line = one_line_error(bench_cli("run", str(suite), cwd=tmp_path))
    assert line == f"error: {suite}: seeds: seed 18446744073709551616 is out of range; seeds are integers from 0 " \
                   "to 2147483647"


@pytest.mark.slow
@pytest.mark.process
def test_dry_run_into_a_pipe_that_closes_early_is_not_an_error(tmp_path):
    suite = tiny(tmp_path, seeds=350)  # 700 lines, ~105 KB: more than a pipe holds (64 KiB), so the writer meets
    # the closed end
    result = subprocess.run(f"{sys.executable} -m bench run {suite} --dry-run | head -1; exit ${{PIPESTATUS[0]}}",
                            shell=True, executable="/bin/bash", cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 1 and result.stderr == ""  # quiet; 1 (typer's code for a closed pipe), not a crash
    assert result.stdout == "suite tiny: 700 trials\n"


# 2. parallel processes on a fresh store ---------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.process
def test_two_processes_on_a_fresh_store_train_every_trial_exactly_once(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"  # no file yet: both processes meet a store that does not exist
    for name in ("first", "second"):  # a fresh store, then a new suite (experiment) in the existing store
        suite = tiny(tmp_path, name=name, seeds=2, steps=4)
        command = [sys.executable, "-m", "bench", "run", str(suite), "--runs-dir", str(tmp_path / "runs"),
                   "--tracking-uri", uri, "--threads", "1"]  # 2 processes on 2 cores: a core each
        procs = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        outputs = [p.communicate(timeout=600) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outputs
        trained = sum(out.count("training on cpu") for out, _ in outputs)
        assert trained == 4, outputs  # 4 trials, each trained once, by one process or the other
        for out, _ in outputs:  # each process accounts for every trial: trained here, or finished by the other
            summary = next(line for line in out.splitlines() if line.startswith(f"suite {name}: 4 trials: "))
            done, skipped = (int(summary.split(f"suite {name}: 4 trials: ")[1].split(", ")[i].split()[0])
                             for i in (0, 1))
            assert done + skipped == 4 and done == out.count("training on cpu"), out
        statuses = status_of(tmp_path / "runs", name)
        assert len(statuses) == 4 and all(s["status"] == "finished" for s in statuses.values())
        runs = mlflow_runs(uri, name)
        assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}


# 3. the tracking store ------------------------------------------------------------------------------------------

def test_an_unreachable_tracking_server_fails_before_training_in_one_line(tmp_path):
    port = free_port()  # nothing listens there
    suite = tiny(tmp_path)
    result = bench_cli("run", str(suite), "--runs-dir", str(tmp_path / "runs"), "--tracking-uri",
                       f"http://127.0.0.1:{port}", cwd=tmp_path, env=NO_RETRIES)
    line = one_line_error(result)
    assert f"cannot reach the MLflow tracking server http://127.0.0.1:{port}" in line and "nothing was trained" in line
    assert not list((tmp_path / "runs").glob("*/*/checkpoint.pt"))


class MlflowServer:
    """A real `mlflow server` on 127.0.0.1 with a SQLite backend. Starting one takes ~20 s on 2 cores (two
    interpreters importing MLflow), so it is started once; `Link` takes it away from bench and brings it back."""

    def __init__(self, folder: Path):
        self.folder, self.port = folder, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self) -> None:
        mlflow = Path(sys.executable).with_name("mlflow")
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # else 7 job-runner processes start too
        self.proc = subprocess.Popen([str(mlflow), "server", "--host", "127.0.0.1", "--port", str(self.port),
                                      "--backend-store-uri", f"sqlite:///{self.folder}/server.db",
                                      "--workers", "1"],
                                     cwd=self.folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                                     start_new_session=True)
        deadline = time.time() + 300
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("mlflow server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.proc = None


class Link:
    """A TCP relay on its own port to a server, which a test cuts and restores. Cut, it is to a client what a server
    gone away is: open connections are reset, new ones refused (nothing listens on the port); restored, the same
    address answers again."""

    def __init__(self, target_port: int):
        self.target, self.port = target_port, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.listener: socket.socket | None = None
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            listener.close()
        with self.lock:
            connections, self.open = self.open, []
        for conn in connections:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # closed with a reset
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass


@pytest.mark.slow
@pytest.mark.process
def test_a_server_lost_mid_run_loses_no_trial_and_a_rerun_sends_the_kept_records(tmp_path):
    server = MlflowServer(tmp_path)
    server.start()
    link = Link(server.port)
    link.restore()
    try:
        suite = tiny(tmp_path, name="lost", steps=100, checkpoint_every=20)
        args = ["run", str(suite), "--runs-dir", str(tmp_path / "runs"), "--tracking-uri", link.uri]

        def cut_at_the_first_checkpoint():  # the server goes away while the first trial trains
            deadline = time.time() + 300
            while time.time() < deadline and not list((tmp_path / "runs" / "lost").glob("*/checkpoint.pt")):
                time.sleep(0.02)
            link.cut()

        cutter = threading.Thread(target=cut_at_the_first_checkpoint)
        cutter.start()
        ran = bench_cli(*args, cwd=tmp_path, env=NO_RETRIES)
        cutter.join()
        out, err = ran.stdout, ran.stderr
        assert ran.returncode == 1, (out, err)
        assert "Traceback" not in out + err
        assert out.count("finished: steps=100") == 2  # both trials trained to the end all the same
        assert "could not be sent" in out and "are sent by the next `bench run" in out
        assert list((tmp_path / "runs" / "lost").glob("*/pending/journal.jsonl"))

        link.restore()
        again = bench_cli(*args, cwd=tmp_path, env=NO_RETRIES)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "sent the pending records" in again.stdout and "training on" not in again.stdout
        assert not list((tmp_path / "runs" / "lost").glob("*/pending"))
        runs = mlflow_runs(server.uri, "lost")
        from mlflow.tracking import MlflowClient

        client = MlflowClient(server.uri)
        assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
        for run in runs:  # the whole history, the grids and the checkpoint: nothing of the trial was lost
            assert [m.step for m in client.get_metric_history(run.info.run_id, "loss_d")] == list(range(10, 101, 10))
            assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"checkpoint", "samples",
                                                                               "config.json"}
    finally:
        link.cut()
        server.stop()


def test_artifacts_live_beside_the_sqlite_store_not_in_the_first_working_folder(tmp_path):
    uri = store(tmp_path)
    first = tmp_path / "first"
    first.mkdir()
    suite = tiny(tmp_path, steps=2)
    ran = bench_cli("run", str(suite), "--only", "method=dcgan", "--runs-dir", str(tmp_path / "runs"),
                    "--tracking-uri", uri, cwd=first)
    assert ran.returncode == 0, ran.stderr
    assert f"artifacts in {tmp_path}/mlartifacts/tiny" in ran.stdout
    shutil.rmtree(first)  # the folder of the first run is gone: the store keeps working
    second = tmp_path / "second"
    second.mkdir()
    again = bench_cli("run", str(suite), "--runs-dir", str(tmp_path / "runs"), "--tracking-uri", uri, cwd=second)
    assert again.returncode == 0, again.stderr
    runs = mlflow_runs(uri, "tiny")
    assert all(r.info.artifact_uri.startswith(f"{tmp_path}/mlartifacts/tiny") for r in runs) and len(runs) == 2


def test_an_experiment_whose_artifact_folder_cannot_be_written_is_refused_before_training(tmp_path):
    from mlflow.tracking import MlflowClient

    (tmp_path / "a-file").write_text("")
    MlflowClient(store(tmp_path)).create_experiment("tiny", artifact_location=str(tmp_path / "a-file" / "art"))
    line = one_line_error(bench_cli("run", str(tiny(tmp_path)), "--tracking-uri", store(tmp_path), cwd=tmp_path))
    assert "experiment 'tiny' keeps its artifacts in" in line and "cannot be written" in line


# 4. absurd suites -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, message", [
    (("seeds: 1", "seeds: 100000000"), "100000000 seeds: a suite holds at most 10,000 trials"),
    (("seeds: 1", "seeds: 200\ngrid: {lr_g: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], "
                  "lr_d: [0.1, 0.2, 0.3]}"),
     "the suite expands to 12,000 trials (methods x datasets x grid points x seeds); a suite holds at most 10,000"),
])
def test_absurd_suites_are_refused_with_the_limit_and_why(tmp_path, change, message):
    suite = tiny(tmp_path)
    suite.write_text(suite.read_text().replace(*change))
    assert message in one_line_error(bench_cli("run", str(suite), "--dry-run", cwd=tmp_path))


# 5. images that are bombs or 16-bit -------------------------------------------------------------------------------

def png_bomb(path: Path, side: int = 30000) -> None:
    """A valid PNG header declaring side x side pixels, in a few hundred bytes."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
                     + chunk(b"IEND", b""))


def image_folder(folder: Path, n: int = 40) -> Path:
    from PIL import Image

    from bench.data import load_dataset
    from bench.metrics.features import to_uint8

    folder.mkdir(parents=True)
    for i, image in enumerate(to_uint8(load_dataset("digits", 16).images[:n])):
        Image.fromarray(image[0].numpy()).save(folder / f"{i:03d}.png")
    return folder


def test_a_decompression_bomb_is_skipped_and_logged_in_run_and_in_fid(tmp_path, tiny_inception):
    folder = image_folder(tmp_path / "images")
    png_bomb(folder / "bomb.png")
    suite = tiny(tmp_path, steps=2)
    suite.write_text(suite.read_text().replace("[digits]", f"[{{name: folder, path: {folder}}}]"))
    ran = bench_cli("run", str(suite), "--runs-dir", str(tmp_path / "runs"), "--tracking-uri", store(tmp_path),
                    cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "skipping image" in ran.stderr and "bomb.png" in ran.stderr and "MAX_IMAGE_PIXELS" in ran.stderr
    fid = bench_cli("fid", str(folder), str(folder), "--json", cwd=tmp_path,
                    env={"BENCH_CACHE": str(tmp_path / "cache")})
    assert fid.returncode == 0, fid.stderr
    result = json.loads(fid.stdout)
    assert (result["protocol"]["n_real"], result["protocol"]["n_fake"]) == (40, 40) and "bomb.png" in fid.stderr
    assert result["fid"] == pytest.approx(0, abs=1e-6)


def test_16_bit_images_are_scaled_not_clipped():
    from PIL import Image

    from bench.data.images import decode

    ramp = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)  # 0 .. 65520
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"ramp16-{os.getpid()}.png"
    Image.fromarray(ramp).save(path)
    try:
        with Image.open(path) as img:
            assert img.mode.startswith("I")  # PIL keeps the 16 bits
        decoded = decode(path, "L")[:, :, 0]
    finally:
        path.unlink()
    np.testing.assert_array_equal(decoded, np.rint(ramp / 257).astype(np.uint8))
    assert (decoded == 255).mean() < 0.01  # PIL's convert("L") would have clipped almost all of it to white


# 6. everything a real run would meet is caught by --dry-run --------------------------------------------------------

def unlabelled_folder(folder: Path) -> tuple[str, str]:
    return "[digits]", f"[{{name: folder, path: {image_folder(folder / 'unlabelled')}}}]"


@pytest.mark.parametrize("changes, message", [
    (lambda d: [("resolution: 16", "resolution: 20")],
     "(dcgan on digits, seed 0): resolution 20 is not supported by convolutional nets"),
    (lambda d: [("batch_size: 32", "batch_size: 5000")], "the dataset has 1438 images, fewer than batch_size 5000"),
    (lambda d: [("eval: {metrics: []}", "eval: {metrics: [fid], reference_split: validation}")],
     "eval.reference_split: dataset 'digits' has no split 'validation'; it has: train, test"),
    (lambda d: [("{dcgan: {width: 8}}", "{cdcgan: {width: 8}}"), unlabelled_folder(d)],
     "is conditional and needs a labelled dataset"),
])
def test_dry_run_catches_what_would_stop_a_suite_half_way(tmp_path, changes, message):
    suite = tiny(tmp_path)
    text = suite.read_text()
    for old, new in changes(tmp_path):
        text = text.replace(old, new)
    suite.write_text(text)
    for args in (["--dry-run"], []):  # the real run refuses before training anything
        line = one_line_error(bench_cli("run", str(suite), "--runs-dir", str(tmp_path / "runs"), *args,
                                        "--tracking-uri", store(tmp_path), cwd=tmp_path))
        assert message in line and line.startswith("error: ")
    assert not list((tmp_path / "runs").glob("*/*/checkpoint.pt"))


# 7. a failed trial does not stop the suite ------------------------------------------------------------------------

def test_a_trial_that_cannot_start_is_recorded_failed_and_a_rerun_skips_it(tmp_path, monkeypatch):
    """A BenchError before training (here a device the worker cannot use) was an outcome only: no status.json, no
    MLflow run, and the next run took the trial for new."""
    from types import SimpleNamespace

    from bench import devices
    from bench import trial as trial_module

    calls = []

    def resolve(name):  # the checks before training pass; then the first trial's worker cannot use its device
        calls.append(name)
        if len(calls) == 1:
            raise BenchError("cuda:1 is not available here: this machine has no GPU 1")
        return devices.resolve(name)

    monkeypatch.setattr(trial_module, "devices", SimpleNamespace(resolve=resolve))  # run_trial's, not the checks'

    args = ["run", str(tiny(tmp_path)), "--runs-dir", str(tmp_path / "runs"), "--tracking-uri", store(tmp_path)]
    result = bench_cli(*args, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr, result.stderr
    assert "FAILED: cuda:1 is not available here" in result.stdout and "1 trained" in result.stdout
    statuses = status_of(tmp_path / "runs", "tiny")
    assert sorted(s["status"] for s in statuses.values()) == ["failed", "finished"]
    failed = next(s for s in statuses.values() if s["status"] == "failed")
    assert failed["reason"].startswith("cuda:1 is not available here")
    runs = mlflow_runs(store(tmp_path), "tiny")
    by_status = {r.info.status: r for r in runs}
    assert set(by_status) == {"FAILED", "FINISHED"}
    assert by_status["FAILED"].data.tags["bench.failure_reason"].startswith("cuda:1 is not available here")
    monkeypatch.setattr(trial_module, "devices", devices)
    rerun = bench_cli(*args, cwd=tmp_path)
    assert rerun.returncode == 1 and "already failed, skipped (--retry-failed" in rerun.stdout, rerun.stdout


def test_a_trial_that_fails_is_recorded_failed_and_the_others_still_train(tmp_path, monkeypatch):
    real_save = torch.save

    def save(obj, f, *a, **k):  # the disk fills up at the second checkpoint of the first trial
        if isinstance(obj, dict) and obj.get("step") == 20 and obj["trial"]["method"] == "dcgan":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **k)

    suite = tiny(tmp_path, steps=30)
    args = ["run", str(suite), "--runs-dir", str(tmp_path / "runs"), "--tracking-uri", store(tmp_path)]
    monkeypatch.setattr(torch, "save", save)
    result = bench_cli(*args, cwd=tmp_path)
    monkeypatch.setattr(torch, "save", real_save)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr, result.stderr
    assert "FAILED at step 10: disk full" in result.stdout  # the last checkpoint that was written
    assert "1 trained" in result.stdout and "1 FAILED" in result.stdout
    statuses = status_of(tmp_path / "runs", "tiny")
    assert sorted(s["status"] for s in statuses.values()) == ["failed", "finished"]
    failed = next(key for key, s in statuses.items() if s["status"] == "failed")
    assert (tmp_path / "runs" / "tiny" / failed / "checkpoint.pt").exists()  # what it computed is kept
    runs = mlflow_runs(store(tmp_path), "tiny")
    by_status = {r.info.status: r for r in runs}
    assert set(by_status) == {"FAILED", "FINISHED"}  # never left RUNNING
    assert by_status["FAILED"].data.tags["bench.failure_reason"].startswith("disk full")

    rerun = bench_cli(*args, cwd=tmp_path)  # skips the failed trial, and says so in its exit code
    assert rerun.returncode == 1 and "already failed, skipped (--retry-failed" in rerun.stdout
    retried = bench_cli(*args, "--retry-failed", cwd=tmp_path)  # resumes it from its checkpoint
    assert retried.returncode == 0, retried.stderr
    assert "resuming on cpu" in retried.stdout
    assert all(s["status"] == "finished" for s in status_of(tmp_path / "runs", "tiny").values())


# 8. Ctrl-C --------------------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.process
def test_ctrl_c_checkpoints_says_how_to_resume_and_the_resumed_trial_equals_an_uninterrupted_one(tmp_path):
    suite = tiny(tmp_path, name="ctrlc", steps=100, checkpoint_every=100)
    trial_runs, ref_runs = tmp_path / "runs", tmp_path / "ref"
    common = ["--only", "method=dcgan", "--tracking-uri", store(tmp_path), "--threads", "1"]
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", str(suite), "--runs-dir", str(trial_runs),
                             *common], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seen = []
    for line in proc.stdout:  # a real process at a real step: its first progress line is at 10%
        seen.append(line)
        if " steps (10%)" in line:
            break
    proc.send_signal(signal.SIGINT)  # at step 10 or a little later: long before the only periodic checkpoint, at 100
    out, err = proc.communicate(timeout=300)
    out = "".join(seen) + out
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in out + err
    said = err.strip().splitlines()[-1]
    assert said.startswith("interrupted: dcgan on digits (trial ") and "checkpointed at step" in said
    assert said.endswith("rerun the same command to resume")
    step = int(said.split("checkpointed at step ")[1].split(";")[0])
    assert 10 <= step < 100  # saved at the step it stopped: there was no periodic checkpoint before
    runs = mlflow_runs(store(tmp_path), "ctrlc")
    assert [r.info.status for r in runs] == ["KILLED"]

    resumed = bench_cli("run", str(suite), "--runs-dir", str(trial_runs), *common, cwd=tmp_path)
    assert resumed.returncode == 0 and "resuming on cpu" in resumed.stdout, resumed.stderr
    reference = bench_cli("run", str(suite), "--runs-dir", str(ref_runs), *common, cwd=tmp_path)
    assert reference.returncode == 0
    a, b = status_of(trial_runs, "ctrlc"), status_of(ref_runs, "ctrlc")
    assert a == b  # same key, same losses to the last bit
    key = next(iter(a))
    ga = torch.load(trial_runs / "ctrlc" / key / "checkpoint.pt", weights_only=False)["networks"]["generator"]
    gb = torch.load(ref_runs / "ctrlc" / key / "checkpoint.pt", weights_only=False)["networks"]["generator"]
    assert all(torch.equal(ga[k], gb[k]) for k in ga)
    runs = mlflow_runs(store(tmp_path), "ctrlc")
    assert sorted(r.info.status for r in runs) == ["FINISHED", "FINISHED"]


# 9. ordinary mistakes ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, args, message", [
    (lambda d: (d / "s.yaml").write_bytes(b"name: caf\xe9\n"), ["run", "s.yaml"],
     "error: s.yaml: not UTF-8 text (byte 9: b'\\xe9'); save the suite as UTF-8"),
    (None, ["run", "s.yaml", "--set", "eval.metrics=[fid"],
     "error: --set eval.metrics=[fid: the value is not valid YAML"),
    (None, ["run", "s.yaml", "--set", "budget.steps.x=1"],
     "error: --set budget.steps.x=1: 'budget.steps' is a plain value (20), not a mapping"),
    (None, ["run", "s.yaml", "--tracking-uri", "nonsense://x"],
     "error: --tracking-uri nonsense://x: unknown scheme 'nonsense'"),
    (None, ["run", "s.yaml", "--tracking-uri", "sqlite:////no/such/folder/m.db"],
     "error: tracking store sqlite:////no/such/folder/m.db: the folder /no/such/folder does not exist"),
    (lambda d: (d / "runs").write_text("a file"), ["run", "s.yaml", "--runs-dir", "runs"],
     "error: runs folder runs/tiny cannot be written (Not a directory)"),
    (lambda d: image_folder(d / "one", n=1), ["fid", "digits", "one"],
     "error: only 1 evaluated image: FID needs at least 2 per side"),
    (lambda d: (d / "out").write_text("a file"), ["report", "--out", "out", "--tracking-uri", "sqlite:///m.db"],
     "error: --out out: is a file, not a folder"),
])
def test_ordinary_mistakes_are_one_line_and_exit_code_2(tmp_path, make, args, message):
    tiny(tmp_path, name="s").write_text(TINY.format(name="tiny", seeds=1, steps=20, checkpoint_every=10))
    if make is not None:
        make(tmp_path)
    if args[0] == "report":  # a store with one finished trial, so the report gets as far as writing
        sqlite_store(tmp_path, "m.db")
        ran = bench_cli("run", "s.yaml", "--only", "method=dcgan", "--set", "budget.steps=2", "--tracking-uri",
                        "sqlite:///m.db", cwd=tmp_path)
        assert ran.returncode == 0, ran.stderr
    result = bench_cli(*args, cwd=tmp_path, env={"BENCH_CACHE": str(tmp_path / "cache")})
    assert one_line_error(result).startswith(message)


def test_a_read_only_or_full_runs_folder_is_refused_before_training(monkeypatch, capsys, tmp_path):
    """Read-only file systems and full disks cannot be made by a test without root; the checks are met in-process
    through bench's entry point, with the operating system's answers replaced."""
    import errno


    suite = tiny(tmp_path)
    monkeypatch.chdir(tmp_path)
    real_mkdir = Path.mkdir

    def read_only(self, *a, **k):
        if "runs" in self.parts:
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", read_only)
    code, out, err = bench_main(monkeypatch, capsys, "run", str(suite), "--runs-dir", "runs")
    assert code == 2 and err == "error: runs folder runs/tiny cannot be written (Read-only file system); pass a " \
                                "writable --runs-dir (env BENCH_RUNS)\n"
    monkeypatch.setattr(Path, "mkdir", real_mkdir)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 2**20, 2**20))
    code, out, err = bench_main(monkeypatch, capsys, "run", str(suite), "--runs-dir", "runs")
    assert code == 2 and err.startswith("error: runs folder runs/tiny: 1 MiB free, the trials need about 65 MiB")
    assert not list((tmp_path / "runs").glob("*/*/checkpoint.pt"))


# 11. the minor ones -----------------------------------------------------------------------------------------------

def test_duplicate_method_labels_are_refused(tmp_path):
    suite = tiny(tmp_path)
    suite.write_text(suite.read_text().replace("{lsgan: {width: 8}}", "{dcgan: {width: 16}}"))
    line = one_line_error(bench_cli("run", str(suite), "--dry-run", cwd=tmp_path))
    assert "methods.1: the label 'dcgan' is used twice; give one entry its own `label:`" in line


def test_temporary_files_of_a_killed_checkpoint_write_are_removed_at_the_next_start(tmp_path):
    suite = tiny(tmp_path, steps=4)
    folder = tmp_path / "runs" / "tiny"
    from bench.suite import expand, load_suite

    key = expand(load_suite(suite))[0].key
    (folder / key).mkdir(parents=True)
    stale = folder / key / ".checkpoint.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    ran = bench_cli("run", str(suite), "--runs-dir", str(tmp_path / "runs"), "--tracking-uri", store(tmp_path),
                    cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert not stale.exists() and (folder / key / "checkpoint.pt").exists()


@pytest.mark.slow
@pytest.mark.process
def test_building_lego_against_a_refused_connection_says_so_in_one_line(tmp_path):
    """The crawl runs in a process of its own (Twisted's reactor starts once per process), as for a user."""
    port = free_port()
    result = bench_cli("data", "build", "lego", "--base-url", f"http://127.0.0.1:{port}", "--image-base-url",
                       f"http://127.0.0.1:{port}", "--delay", "0.01", "--out", str(tmp_path / "lego"),
                       cwd=tmp_path)
    line = one_line_error(result)
    assert line.startswith(f"error: connection refused to http://127.0.0.1:{port}/robots.txt; check --base-url")
    assert (tmp_path / "lego" / ".crawl" / "crawl.log").exists()  # Scrapy's log is kept, off the screen


# progress -------------------------------------------------------------------------------------------------------

def test_progress_is_plain_lines_in_a_log(tmp_path):
    suite = tiny(tmp_path, steps=50, checkpoint_every=50)
    suite.write_text(suite.read_text().replace("log: {every: 10,", "log: {every: 5,"))  # an update each tenth
    ran = bench_cli("run", str(suite), "--runs-dir", str(tmp_path / "runs"), cwd=tmp_path,
                    env={"MLFLOW_TRACKING_URI": store(tmp_path)})
    assert ran.returncode == 0, ran.stderr
    progress = [line for line in ran.stdout.splitlines() if " steps (" in line]
    assert "\r" not in ran.stdout and "\x1b" not in ran.stdout
    assert len(progress) == 2 * 9  # each tenth of each trial, 10% .. 90%
    assert progress[0].startswith("[1/2] dcgan digits s0: 5/50 steps (10%), ETA ") and "loss_d" in progress[0]


@pytest.mark.slow
@pytest.mark.process
def test_progress_is_one_live_line_on_a_terminal(tmp_path):
    import fcntl
    import pty
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))  # 200 columns: nothing cut
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}  # the terminal's own size
    suite = tiny(tmp_path, steps=60, checkpoint_every=60)  # a redraw every 10 steps
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", str(suite), "--runs-dir", str(tmp_path / "runs"),
                             "--tracking-uri", store(tmp_path)], cwd=tmp_path, stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=follower, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=300)
    os.close(leader)
    screen = b"".join(chunks).decode()
    assert proc.returncode == 0, screen
    assert screen.count("\r[1/2] dcgan digits s0: ") >= 5 and "\x1b[K" in screen  # one status line, redrawn
    assert "60/60 steps" not in screen.replace("\r\n", "\n").split("\n")[-1]  # cleared before the summary
    assert "steps (50%), ETA " in screen and " img/s, loss_d " in screen
    assert "suite tiny: 2 trials: 2 trained" in screen

