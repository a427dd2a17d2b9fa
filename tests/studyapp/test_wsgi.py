"""The WSGI entry point freezes the loaded heap, so full collections stay short."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_loading_the_wsgi_application_freezes_the_heap_it_built():
    code = "import gc, studyapp.wsgi; print(gc.get_freeze_count(), len(gc.get_objects()))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    frozen, still_tracked = result.stdout.split()
    # Nearly everything imported is frozen; what the collector still scans is a small rest.
    assert int(frozen) > 100_000
    assert int(still_tracked) < int(frozen) / 10


def test_the_web_process_does_not_load_the_network_stack():
    """torch is for the Celery worker and the CLIs; a web worker that imported it would hold
    about 190 MB more and take twice as long to start."""
    code = "import sys, studyapp.wsgi; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
