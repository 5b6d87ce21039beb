"""User-facing errors.

A `CNError` carries one line that tells the user what went wrong and what to do. The CLI prints
it on stderr and exits with `exit_code`; it never shows a traceback for these.
"""


class CNError(Exception):
    """A user error: bad input, a mismatched store, a missing weight file."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(" ".join(str(message).split()))  # always one line
        if exit_code is not None:
            self.exit_code = exit_code


class MissingWeightsError(CNError):
    """A model weight file is not where the config says it is."""


class StoreMismatchError(CNError):
    """The store was made with another preset, schema or voxel mask."""


# Exit code for an ingest in which some clips failed (the others were stored).
EXIT_PARTIAL = 3
