"""nox sessions: `uvx nox -s tests` runs the test suite, `uvx nox -s lint` runs ruff and the import contracts,
`uvx nox -s example` regenerates the example report, `uvx nox -s gpu-prepare` the wheels scripts/gpu-check.sh
installs on a GPU machine."""

import nox

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "tests"]


@nox.session
def tests(session: nox.Session) -> None:
    session.run_install("uv", "sync", "--frozen", env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location})
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, and import-linter's contracts (pyproject.toml: bench's import layers), on the locked environment."""
    session.run_install("uv", "sync", "--frozen", env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location})
    session.run("ruff", "check", "bench", "scrapers", "tests", "noxfile.py")
    session.run("lint-imports")


@nox.session(venv_backend="none")
def example(session: nox.Session) -> None:
    """Regenerate the committed example reports (reports/quickstart/, conditional/, i2i/, smalldata/) from fresh runs.

    Run it, and `uv run python -m tests.test_golden`, in the commit that changes what training or evaluation
    computes: the golden test fails until they are regenerated. `uvx nox -s example -- quickstart` does one.
    """
    import tempfile

    for suite in session.posargs or ["quickstart", "conditional", "i2i", "smalldata"]:
        with tempfile.TemporaryDirectory() as tmp:
            store = f"sqlite:///{tmp}/mlflow.db"
            session.run("uv", "run", "bench", "run", f"suites/{suite}.yaml", "--runs-dir", f"{tmp}/runs",
                        "--tracking-uri", store, external=True)
            session.run("uv", "run", "bench", "report", "--suite", suite, "--tracking-uri", store, "--out",
                        f"reports/{suite}", external=True)


# What `bench check` imports that the GPU machine this project borrows lacks (it has torch, numpy, yaml, rich,
# shellingham, annotated-doc, but no pydantic; its typer is older than bench's, which needs pydantic itself; no
# threadpoolctl, which the portable path's kernels set OpenBLAS's threads with); found by running the check in an
# environment of that machine's packages alone (tests/test_check.py does).
GPU_WHEELS = ("pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions", "typer",
              "threadpoolctl")
GPU_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
                 "manylinux1_x86_64")


@nox.session(name="gpu-prepare")
def gpu_prepare(session: nox.Session) -> None:
    """Download GPU_WHEELS at uv.lock's versions, for CPython 3.12 on x86-64 Linux (the GPU machine), into .whl/
    (ignored by git); `-- 3.11 DIR` fetches them for another Python into another folder. Run it where PyPI is
    reachable, then carry .whl/ to the GPU machine with the checkout and run scripts/gpu-check.sh there."""
    import shutil
    import tomllib

    version, dest = (list(session.posargs) + ["3.12", ".whl"][len(session.posargs):])[:2]
    with open("uv.lock", "rb") as lock:
        locked: dict[str, set[str]] = {}
        for package in tomllib.load(lock)["package"]:
            locked.setdefault(package["name"], set()).add(package["version"])
    pins = []
    for name in GPU_WHEELS:
        if len(locked.get(name, ())) != 1:
            session.error(f"uv.lock holds {sorted(locked.get(name, ()))} for {name}: one version is needed")
        pins.append(f"{name}=={next(iter(locked[name]))}")
    session.install("pip")
    shutil.rmtree(dest, ignore_errors=True)  # one version of each: two would stop the install on the GPU machine
    session.run("python", "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version",
                version, "--implementation", "cp", *(f"--platform={p}" for p in GPU_PLATFORMS), "--dest", dest, *pins)
