"""`python manage.py demo [--no-serve]`: build the demo study, then run a worker and the site."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from studyapp.demo.services import build_demo


class Command(BaseCommand):
    help = "Build the demo study (idempotent) and serve it with a background Celery worker."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-serve", action="store_true", help="Build the demo and exit.")
        parser.add_argument("--addrport", default="127.0.0.1:8000")

    def handle(self, *args: object, **options: object) -> None:
        call_command("migrate", verbosity=0)
        if not options["no_serve"]:
            # Start the worker first: building the demo queues jobs (previews, reconstructions).
            worker = self._start_worker()
        report = build_demo(progress=lambda line: self.stdout.write(line))
        self.stdout.write(self.style.SUCCESS("Demo study ready."))
        for note in report.notes:
            self.stdout.write(f"  {note}")
        self.stdout.write(f"Log-ins (password: {report.password}):")
        for username, role in report.logins:
            self.stdout.write(f"  {username:<14} {role}")
        if options["no_serve"]:
            return
        self.stdout.write(
            f"Open http://{options['addrport']}/ ; Ctrl-C stops the site and the worker."
        )
        try:
            call_command("runserver", options["addrport"], use_reloader=False)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)

    def _start_worker(self) -> subprocess.Popen:
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "studyapp",
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            "1",
            # The embedded beat runs the stale-job reaper every minute.
            "--beat",
            "--schedule",
            settings.CELERY_BEAT_SCHEDULE_FILENAME,
        ]
        self.stdout.write("Starting a Celery worker: " + " ".join(command[1:]))
        return subprocess.Popen(command, env=os.environ.copy())
