"""Job kinds: each app registers the function that does the work for a kind.

A handler receives a `JobContext` (to report progress) and the job's params.
It returns a JSON-serialisable result. It raises `TransientJobError` for
failures worth a retry (a locked database, a broker hiccup); anything else fails
the job with its message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


class TransientJobError(RuntimeError):
    """A failure that may succeed when retried."""


class ProgressReporter(Protocol):
    def __call__(self, percent: float, message: str = "") -> None: ...


@dataclass(frozen=True)
class JobContext:
    job_id: int
    case_id: int | None
    user_id: int | None
    report: ProgressReporter


JobHandler = Callable[..., dict[str, Any] | None]
_HANDLERS: dict[str, JobHandler] = {}


def register(kind: str) -> Callable[[JobHandler], JobHandler]:
    def decorator(handler: JobHandler) -> JobHandler:
        if kind in _HANDLERS and _HANDLERS[kind] is not handler:
            raise ValueError(f"job kind {kind!r} is registered twice")
        _HANDLERS[kind] = handler
        return handler

    return decorator


def handler_for(kind: str) -> JobHandler:
    try:
        return _HANDLERS[kind]
    except KeyError:
        raise LookupError(f"no handler for job kind {kind!r}") from None


def known_kinds() -> list[str]:
    return sorted(_HANDLERS)
