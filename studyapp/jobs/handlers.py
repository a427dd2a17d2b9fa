"""Built-in job kinds."""

from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings

from studyapp.files import atomic_write_bytes

from .registry import JobContext, register


@register("jobs.selfcheck")
def selfcheck(
    context: JobContext,
    steps: int = 5,
    step_seconds: float = 0.2,
    fail: bool = False,
    write_file: str = "",
) -> dict:
    """Proves the worker is alive: ticks progress, optionally writes a file atomically or fails.

    Coordinators run it from the jobs page; the tests use it to kill a worker mid-task.
    """
    payload = bytearray()
    for step in range(steps):
        time.sleep(step_seconds)
        payload.extend(f"step {step}\n".encode())
        context.report(100 * (step + 1) / steps, f"step {step + 1} of {steps}")
    if fail:
        raise RuntimeError("selfcheck asked to fail")
    if write_file:
        target = Path(settings.MEDIA_ROOT) / "selfcheck" / Path(write_file).name
        atomic_write_bytes(target, bytes(payload))
        return {"steps": steps, "file": str(target.relative_to(settings.MEDIA_ROOT))}
    return {"steps": steps}
