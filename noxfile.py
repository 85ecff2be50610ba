"""nox sessions: `uvx nox -s tests` runs the test suite, `uvx nox -s lint` runs ruff."""

import nox

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "tests"]


@nox.session
def tests(session: nox.Session) -> None:
    session.run_install("uv", "sync", "--frozen", env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location})
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "bench", "scrapers", "tests", "noxfile.py")
