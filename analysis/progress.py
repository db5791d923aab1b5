"""Progress and cancellation for long computations that run in the background worker.

A long loop (attention flow over many sinks, attribution samples, ...) takes two optional
callbacks: ``progress(fraction)`` with ``fraction`` in ``[0, 1]``, and ``cancelled() -> bool``,
checked between steps. When ``cancelled()`` returns True the loop raises :class:`Cancelled`;
the worker catches it and drops the request quietly. Plain functions, no Qt.
"""

from __future__ import annotations

from collections.abc import Callable

ProgressCallback = Callable[[float], None]
CancelCheck = Callable[[], bool]


class Cancelled(Exception):
    """A long computation stopped because its ``cancelled()`` callback returned True."""


def raise_if_cancelled(cancelled: CancelCheck | None, what: str = "computation") -> None:
    """Raise :class:`Cancelled` when ``cancelled`` is given and returns True."""
    if cancelled is not None and cancelled():
        raise Cancelled(f"{what} was cancelled")


def report_progress(progress: ProgressCallback | None, fraction: float) -> None:
    """Call ``progress(fraction)`` (clamped to ``[0, 1]``) when a callback is given."""
    if progress is not None:
        progress(min(1.0, max(0.0, float(fraction))))
