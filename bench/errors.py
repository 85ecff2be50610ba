"""User-facing errors: the CLI prints them as one line and exits with code 2."""


class BenchError(Exception):
    """A problem the user can fix (bad suite, missing dataset, bad flag). Message: what is wrong and how to fix it."""


class DatasetNotFound(BenchError):
    """A registered dataset whose files are not on disk."""
