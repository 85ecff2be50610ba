"""User-facing errors: the CLI prints them as one line and exits with code 2 (an interruption: 130)."""


class BenchError(Exception):
    """A problem the user can fix (bad suite, missing dataset, bad flag). Message: what is wrong and how to fix it."""


class DatasetNotFound(BenchError):
    """A registered dataset whose files are not on disk."""


class Interrupted(Exception):  # noqa: N818 - it is what happened, not an error of the user's
    """Ctrl-C, after the work was put in order. Message: what was kept and how to go on."""
