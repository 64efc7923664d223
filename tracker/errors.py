"""Domain errors that carry a machine-readable code, so callers branch on codes, not messages."""

from __future__ import annotations


class AdServerError(Exception):
    """Base of the project's errors; ``code`` is stable and safe to show to an operator."""

    code = "error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


class StoreError(AdServerError):
    """A database call failed; ``retryable`` tells whether trying again may help."""

    code = "store_error"

    def __init__(self, message: str, code: str | None = None, retryable: bool = False) -> None:
        super().__init__(message, code)
        self.retryable = retryable


class StoreUnavailable(StoreError):
    """The server could not be reached (network, timeout): worth retrying later."""

    code = "store_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class FeedError(AdServerError):
    """A product feed could not be read at all (as opposed to single bad rows).

    ``report`` carries the row-by-row import report when the rows could be read but none was valid.
    """

    code = "feed_error"

    def __init__(self, message: str, code: str | None = None, report=None) -> None:
        super().__init__(message, code)
        self.report = report
