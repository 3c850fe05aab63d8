"""The one home of the CLI's expected failures: each is printed as ONE line (what happened, what to do), exit 2."""

from __future__ import annotations

from rich.markup import escape

from leadersboard.client_errors import ApiError, ClientError

__all__ = ["EXPECTED", "UsageError", "failure_line"]


class UsageError(Exception):
    """A mistake in the command's arguments, environment or saved login; the message says how to fix it."""


EXPECTED: tuple[type[Exception], ...] = (ClientError, UsageError, FileNotFoundError, TimeoutError)
"""What `leadersboard` reports with `failure_line` and exit 2; anything else is a bug and keeps its traceback."""


def failure_line(exc: Exception) -> str:
    """Rich markup of one line; the exception's own text is escaped (it may hold brackets: `[Errno 111]`)."""
    if isinstance(exc, ApiError):
        where = f"[red]error {exc.status} ({escape(exc.code)})[/red]: {escape(exc.message)}"
        then = f"; retry after {exc.retry_after_s:.0f} s" if exc.retry_after_s else ""
        return where + then + (f"; {escape(exc.hint)}" if exc.hint else "")  # the API's own 4xx carry none
    if isinstance(exc, ClientError):
        return f"[red]error[/red]: {escape(str(exc))}; {escape(exc.hint)}"
    return f"[red]error[/red]: {escape(str(exc))}"
