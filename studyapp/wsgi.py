"""WSGI entry point."""

import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studyapp.settings")
application = get_wsgi_application()
get_resolver().check()  # import every view module now, not on the first request

# Move the ~340k objects loaded so far (Django, DRF, the science stack) into the collector's
# permanent generation. Otherwise every full collection, about once per 150 requests, scans
# them all and stalls every thread of the worker for 130-350 ms, which set the p95 of the
# submission load benchmark. Under `gunicorn --preload` the forked workers inherit the frozen
# heap and share its pages longer.
gc.freeze()
