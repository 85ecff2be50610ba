"""The `bench report` command (registered by bench.cli as `app.command("report")(report_command)`)."""

from __future__ import annotations

from pathlib import Path

import typer

from bench.errors import BenchError
from bench.tracking import DEFAULT_TRACKING_URI


def report_command(
    suite: list[str] | None = typer.Option(None, "--suite", help="suite (MLflow experiment) to report; "
                                                                   "repeat for several [every suite]"),
    out: Path | None = typer.Option(None, "--out", help="output folder [reports/<suite>/]; with several "
                                                        "suites, one subfolder per suite"),
    format: str = typer.Option("html,md,tex,csv", "--format",
                               help="comma-separated subset of html,md,tex,csv"),
    tracking_uri: str | None = typer.Option(None, "--tracking-uri", envvar="MLFLOW_TRACKING_URI",
                                            help="MLflow store [sqlite:///mlflow.db]"),
) -> None:
    """Tables (final and best FID, CIs, tests), plots and samples for each suite, from the MLflow records."""
    # pandas, seaborn and MLflow load when a report is built, not for every `bench` command
    from bench.report.build import parse_formats, write_report
    from bench.report.records import list_suites
    from bench.suite import folder_name

    formats = parse_formats(format)
    uri = tracking_uri or DEFAULT_TRACKING_URI
    names = list(dict.fromkeys(suite)) if suite else list_suites(uri)
    if not names:
        raise BenchError(f"no suites in {uri}: train one first (`bench run suites/quickstart.yaml`), or pass "
                         f"--tracking-uri for the store that holds your runs")
    for name in names:
        if out is None or len(names) > 1:  # the name becomes a folder: reports/.. would be the working folder
            try:
                folder_name(name)
            except ValueError as err:
                raise BenchError(f"suite '{name}' in {uri}: its name {err}; give it its own folder with "
                                 f"--suite '{name}' --out DIR") from None
        if out is None:
            folder = Path("reports") / name
        else:
            folder = out if len(names) == 1 else out / name
        written = write_report(uri, name, folder, formats)
        typer.echo(f"suite {name}: {len(written)} files in {folder}/"
                   + (f" (open {folder / 'index.html'})" if "html" in formats else ""))
