"""nox sessions: `uvx nox -s tests` runs the test suite, `uvx nox -s lint` runs ruff and the import contracts,
`uvx nox -s example` regenerates the example report."""

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
    """Regenerate the committed example reports (reports/quickstart/, conditional/, i2i/) from fresh runs.

    Run it, and `uv run python -m tests.test_golden`, in the commit that changes what training or evaluation
    computes: the golden test fails until they are regenerated. `uvx nox -s example -- quickstart` does one.
    """
    import tempfile

    for suite in session.posargs or ["quickstart", "conditional", "i2i"]:
        with tempfile.TemporaryDirectory() as tmp:
            store = f"sqlite:///{tmp}/mlflow.db"
            session.run("uv", "run", "bench", "run", f"suites/{suite}.yaml", "--runs-dir", f"{tmp}/runs",
                        "--tracking-uri", store, external=True)
            session.run("uv", "run", "bench", "report", "--suite", suite, "--tracking-uri", store, "--out",
                        f"reports/{suite}", external=True)
