"""Rating submission under load on PostgreSQL: latency, integrity and a baseline in one run.

A fresh database is migrated and filled through the app's own services (study, cases,
reconstructions with bone meshes, blinded items, raters with API tokens, launch). A real
gunicorn server (gthread workers, DEBUG=0 settings, plain http) serves it on 127.0.0.1.
Each rater is a client thread with keep-alive connections that submits its items in reading
order with random Likert answers; a fixed share of submissions is sent twice at once with
the same idempotency key. Baseline, same server and raters, measured first: the rater's
own assignment list, GET /api/reading/assignments/ (token auth, the open items).
Afterwards the database is checked: one answer per reader x item x question x round, with
the value sent, one submission per assignment and one audit row per answer created.

Run: .venv/bin/python benchmarks/bench_reading_submit.py [--raters 50] [--items-per-rater 20]
     [--workers 3] [--think-ms 1000] [--runs 1]   (needs PostgreSQL; server set by --database-url or
     DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres). The benchmark
     database and the server are removed at the end, also on error.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import multiprocessing
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parent.parent
LIMIT_P95_MS = 50.0
KEEP_ALIVE_S = 30
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"
SUBMIT_PATH = "/api/reading/assignments/{}/submit/"
# Baselines, same server and raters: the cheapest authenticated API call (the router's root:
# token lookup, DRF, JSON) and the rater's own read path (the list of open assignments).
BASELINES = {
    "baseline: GET /api/ (API root)": "/api/",
    "baseline: GET /api/reading/assignments/": "/api/reading/assignments/",
}
SUBMIT_NAME = "POST /api/reading/assignments/<id>/submit/"
DUPLICATE = "duplicate"  # both requests of a pair sent twice at once (one waits for the other)


# --- database and server ------------------------------------------------------------------


def database_url(server_url: str, name: str) -> str:
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def admin_connection(server_url: str) -> psycopg.Connection:
    return psycopg.connect(database_url(server_url, "postgres"), autocommit=True)


def create_database(server_url: str, name: str) -> None:
    with admin_connection(server_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(server_url: str, name: str) -> None:
    with admin_connection(server_url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def app_environment(db_url: str, scratch: Path) -> dict[str, str]:
    """Production-like settings (DEBUG=0) but plain http, files in a scratch folder."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="studyapp.settings",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(48),
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="0",
        DATABASE_URL=db_url,
        DATABASE_CONN_MAX_AGE="60",
        # Nothing on the submission path queues a task: keep the shared Redis untouched.
        CELERY_BROKER_URL="memory://",
        STUDYAPP_VAR_DIR=str(scratch / "var"),
        MEDIA_ROOT=str(scratch / "media"),
        STATIC_ROOT=str(scratch / "static"),
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    env.pop("REDIS_URL", None)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(env: dict[str, str], port: int, workers: int, threads: int, log: Path):
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "studyapp.wsgi:application",
        f"--bind=127.0.0.1:{port}",
        f"--workers={workers}",
        "--worker-class=gthread",
        f"--threads={threads}",
        "--preload",  # import Django (and its science stack) once, then fork
        f"--keep-alive={KEEP_ALIVE_S}",
        "--timeout=120",
        "--log-level=warning",
    ]
    with log.open("wb") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_until_serving(server: subprocess.Popen, port: int, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited ({server.returncode}):\n{log.read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/")
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"gunicorn did not answer within {timeout:.0f} s")


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.terminate()  # graceful: the master stops its workers
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# --- the study, built by the app's services (runs in a child process with the bench env) --


def _bone_meshes(knee: int):
    import trimesh

    offsets = {"femur": (0, 0, 40), "tibia": (0, 0, -45), "fibula": (30, 5, -60)}
    meshes = {}
    for bone in ("femur", "tibia", "fibula", "patella"):
        sphere = trimesh.creation.icosphere(subdivisions=2, radius=12.0 + knee % 5)
        sphere.apply_translation(offsets.get(bone, (0, -40, 35)))
        meshes[bone] = sphere
    return meshes


def _finished_reconstruction(case, source: str, knee: int):
    from studyapp.cases import services as cases
    from studyapp.cases.models import Reconstruction

    # The row a reconstruction job starts from; the job's own services fill it in.
    reconstruction = Reconstruction.objects.create(case=case, source=source, method="bench")
    cases.begin_reconstruction(reconstruction.pk)
    return cases.finish_reconstruction(reconstruction, _bone_meshes(knee), {"timings_s": {}})


def build_study(raters: int, items: int) -> dict:
    """Migrate, then a launched study: `items` blinded items (two arms per knee) per rater."""
    from django.core.management import call_command
    from django.test import override_settings

    from studyapp.accounts import services as accounts
    from studyapp.accounts.roles import Role
    from studyapp.cases import services as cases
    from studyapp.reading import services as reading
    from studyapp.reading.models import Assignment

    call_command("migrate", verbosity=0, interactive=False)
    study = cases.create_study("Load benchmark")
    for index in range(items):
        knee = index // 2
        if index % 2 == 0:
            case = cases.create_case(study, f"BENCH{knee:04d}", "RL"[knee % 2])
        _finished_reconstruction(case, ("ct", "xray")[index % 2], knee)
    reader_study = reading.create_reader_study(
        study, "Load benchmark reading", session_size=items, washout_days=0, seed=7
    )
    reading.add_items(reader_study, reading.eligible_reconstructions(reader_study))
    for item in reader_study.items.filter(blinded_file=""):  # if the job was not eager
        reading.prepare_item_file(item)
    # Tokens authenticate the load; fast hashing only shortens the set-up of 50 accounts.
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        users = [
            accounts.create_or_update_user(
                f"bench-rater-{n:03d}", secrets.token_hex(8), [Role.RATER]
            )
            for n in range(raters)
        ]
    reading.set_readers(reader_study, users)
    reading.launch(reader_study, actor=None)
    order = Assignment.objects.filter(reader_study=reader_study).order_by("session", "position")
    return {
        "questions": list(reader_study.questions.values_list("pk", flat=True)),
        "raters": [
            {
                "token": accounts.api_token_for(user),
                "assignments": list(order.filter(reader=user).values_list("pk", flat=True)),
            }
            for user in users
        ],
    }


def _setup_child(raters: int, items: int) -> None:
    import django

    django.setup()
    print(json.dumps(build_study(raters, items)))


def run_setup(env: dict[str, str], raters: int, items: int, timeout: float) -> dict:
    code = f"import bench_reading_submit as b; b._setup_child({raters}, {items})"
    child_env = {**env, "CELERY_TASK_ALWAYS_EAGER": "1"}  # blinded files built in-process
    child_env["PYTHONPATH"] = f"{ROOT / 'benchmarks'}{os.pathsep}{ROOT}"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"study set-up failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- load ---------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)  # e.g. "duplicate" for the double sends
    errors: int = 0
    statuses: Counter = field(default_factory=Counter)  # 0: no response (connection error)
    seconds: float = 0.0
    lock: threading.Lock | None = field(default_factory=threading.Lock, repr=False)

    def record(self, ms: float, status: int, tag: str = "") -> None:
        with self.lock:
            self.latencies_ms.append(ms)
            self.tags.append(tag)
            self.errors += status != 200
            self.statuses[status] += 1

    def row(self, tag: str | None = None) -> dict[str, float]:
        chosen = [
            ms for ms, t in zip(self.latencies_ms, self.tags, strict=True) if tag in (None, t)
        ]
        values = np.asarray(chosen or [math.nan])
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        return {
            "requests": len(chosen),
            "errors": self.errors if tag is None else math.nan,
            "p50": p50,
            "p95": p95,
            "p99": p99,
            "max": float(values.max()),
            "rps": len(chosen) / self.seconds if self.seconds else math.nan,
        }


class Client:
    """One keep-alive connection; reconnects after a failure or before the server's keep-alive
    timeout would close it under us (as browsers and urllib3 pools do)."""

    def __init__(self, port: int, token: str):
        self.port = port
        self.headers = {"Authorization": f"Token {token}", "Accept": "application/json"}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.used = time.monotonic()

    def _reconnect(self) -> None:
        self.conn.close()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def call(self, phase: Phase, method: str, path: str, body: dict | None = None, tag: str = ""):
        payload = None if body is None else json.dumps(body).encode()
        headers = dict(self.headers)
        if payload is not None:
            headers["Content-Type"] = "application/json"
        if time.monotonic() - self.used > KEEP_ALIVE_S / 2:
            self._reconnect()
        start = time.perf_counter()
        try:
            self.conn.request(method, path, body=payload, headers=headers)
            response = self.conn.getresponse()
            status, data = response.status, response.read()
        except (OSError, http.client.HTTPException):
            self._reconnect()
            status, data = 0, b""
        self.used = time.monotonic()
        phase.record((time.perf_counter() - start) * 1000, status, tag)
        return status, data

    def close(self) -> None:
        self.conn.close()


@dataclass
class Rater:
    index: int
    token: str
    assignments: list[int]
    sent: dict[int, dict[int, int]] = field(default_factory=dict)  # assignment -> answers
    duplicates: int = 0
    duplicate_mismatches: int = 0
    unaccepted: list[int] = field(default_factory=list)


def _pause(rng: random.Random, think_ms: float) -> None:
    if think_ms > 0:
        time.sleep(rng.uniform(0.5, 1.5) * think_ms / 1000)


def baseline_rater(
    rater: Rater,
    port: int,
    phase: Phase,
    path: str,
    think_ms: float,
    requests: int,
    deadline: float,
) -> None:
    rng = random.Random(f"baseline-{rater.index}")
    client = Client(port, rater.token)
    try:
        _pause(rng, think_ms)
        for _ in range(requests):
            if time.monotonic() > deadline:
                break
            client.call(phase, "GET", path)
            _pause(rng, think_ms)
    finally:
        client.close()


def is_doubled(rater_index: int, position: int, duplicate_every: int) -> bool:
    """One submission in `duplicate_every` is sent twice, at positions that shift with the
    rater: the doubles are spread over the run. (Choosing by a global submission number put
    every rater's double at the same positions when the items per rater were a multiple of
    `duplicate_every`, so all raters doubled at the same moments: bursts of twice the load.)"""
    return bool(duplicate_every) and (position + rater_index) % duplicate_every == 0


def _submit(
    client: Client, phase: Phase, assignment: int, body: dict, out: list, tag: str = ""
) -> None:
    for _ in range(3):  # a client retries with the same key; idempotency makes that safe
        status, data = client.call(phase, "POST", SUBMIT_PATH.format(assignment), body, tag)
        if status == 200 or 400 <= status < 500:
            break
    out.append((status, data))


def _parsed(data: bytes) -> object:
    try:
        return json.loads(data)
    except ValueError:
        return data


def submit_rater(
    rater: Rater,
    port: int,
    phase: Phase,
    questions: list[int],
    think_ms: float,
    duplicate_every: int,
    deadline: float,
) -> None:
    rng = random.Random(f"submit-{rater.index}")
    client, twin = Client(port, rater.token), Client(port, rater.token)
    try:
        _pause(rng, think_ms)
        for position, assignment in enumerate(rater.assignments):
            if time.monotonic() > deadline:
                rater.unaccepted.extend(rater.assignments[position:])
                break
            answers = {q: rng.randint(1, 5) for q in questions}
            body = {
                "answers": {str(q): v for q, v in answers.items()},
                "idempotency_key": f"bench-{rater.index}-{assignment}-{secrets.token_hex(6)}",
                "active_seconds": round(rng.uniform(5, 60), 1),
            }
            results: list = []
            if is_doubled(rater.index, position, duplicate_every):
                # The same key twice at once, as a double click or a retried request.
                other = threading.Thread(
                    target=_submit, args=(twin, phase, assignment, body, results, DUPLICATE)
                )
                other.start()
                _submit(client, phase, assignment, body, results, DUPLICATE)
                other.join()
                rater.duplicates += 1
                rater.duplicate_mismatches += _parsed(results[0][1]) != _parsed(results[1][1])
            else:
                _submit(client, phase, assignment, body, results)
            if any(status == 200 for status, _ in results):
                rater.sent[assignment] = answers
            else:
                rater.unaccepted.append(assignment)
            _pause(rng, think_ms)
    finally:
        client.close()
        twin.close()


@dataclass
class LoadPlan:
    """Everything a client process needs to play its raters through every phase."""

    port: int
    questions: list[int]
    think_ms: float
    duplicate_every: int
    deadline: float  # time.monotonic() (system-wide on Linux, so shared by the processes)


def play_raters(
    plan: LoadPlan, raters: list[Rater], barrier=None
) -> tuple[list[Phase], list[Rater]]:
    """Warm-up, the baselines and the submissions for `raters`, one thread per rater; with a
    barrier, every client process starts each phase together."""

    def phase(name: str, work: Callable[[Rater, Phase], None]) -> Phase:
        if barrier is not None:
            barrier.wait()
        return run_phase(name, raters, work)

    # Warm-up, not measured: connections, worker threads, first queries.
    phase("warm-up", lambda r, ph: baseline_rater(r, plan.port, ph, "/api/", 0, 1, plan.deadline))
    measured = [
        phase(
            name,
            lambda r, ph, path=path: baseline_rater(
                r, plan.port, ph, path, plan.think_ms, len(r.assignments), plan.deadline
            ),
        )
        for name, path in BASELINES.items()
    ]
    measured.append(
        phase(
            SUBMIT_NAME,
            lambda r, ph: submit_rater(
                r, plan.port, ph, plan.questions, plan.think_ms, plan.duplicate_every, plan.deadline
            ),
        )
    )
    for item in measured:
        item.lock = None  # picklable: the phase goes back to the parent process
    return measured, raters


def _client_process(plan: LoadPlan, raters: list[Rater], barrier, results) -> None:
    try:
        results.put(play_raters(plan, raters, barrier))
    except BaseException as error:  # the parent must not wait forever
        barrier.abort()
        results.put(error)
        raise


def merge_phases(parts: list[Phase]) -> Phase:
    merged = Phase(parts[0].name)
    for part in parts:
        merged.latencies_ms += part.latencies_ms
        merged.tags += part.tags
        merged.errors += part.errors
        merged.statuses.update(part.statuses)
        merged.seconds = max(merged.seconds, part.seconds)
    return merged


def run_clients(plan: LoadPlan, raters: list[Rater], processes: int):
    """The raters split over `processes` client processes (round robin), so that the load
    generator's own GIL is not part of the measured latency; phases merged afterwards."""
    processes = min(processes, len(raters))
    if processes <= 1:
        return play_raters(plan, raters)
    context = multiprocessing.get_context("fork")
    groups = [raters[i::processes] for i in range(processes)]
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=_client_process, args=(plan, group, barrier, results))
        for group in groups
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=plan.deadline - time.monotonic() + 120) for _ in workers]
    for worker in workers:
        worker.join()
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    if errors:
        raise RuntimeError(f"a client process failed: {errors[0]!r}")
    phases = [merge_phases([o[0][i] for o in outcomes]) for i in range(len(outcomes[0][0]))]
    played = sorted((r for o in outcomes for r in o[1]), key=lambda r: r.index)
    return phases, played


def run_phase(name: str, raters: list[Rater], work: Callable[[Rater, Phase], None]) -> Phase:
    """One client thread per rater, all at once; wall time for the throughput."""
    phase = Phase(name)
    threads = [threading.Thread(target=work, args=(r, phase)) for r in raters]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    phase.seconds = time.perf_counter() - start
    return phase


# --- integrity ----------------------------------------------------------------------------


def integrity(db_url: str, raters: list[Rater], questions: list[int]) -> dict[str, int]:
    """Compare the database with what the clients had accepted (SQL, read-only)."""
    expected = {
        (a, q): v for r in raters for a, answers in r.sent.items() for q, v in answers.items()
    }
    planned = sum(len(r.assignments) for r in raters)
    with psycopg.connect(db_url) as conn:
        stored = {
            (a, q): v
            for a, q, v in conn.execute(
                "SELECT assignment_id, question_id, value FROM reading_answer"
            )
        }
        duplicated = conn.execute(
            "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM reading_answer "
            "GROUP BY reader_id, item_id, question_id, round HAVING count(*) > 1) d"
        ).fetchone()[0]
        answers = conn.execute("SELECT count(*) FROM reading_answer").fetchone()[0]
        audit = conn.execute(
            "SELECT count(*) FROM reading_auditevent WHERE action = 'create'"
        ).fetchone()[0]
        submissions = conn.execute("SELECT count(*) FROM reading_submission").fetchone()[0]
        unsubmitted = conn.execute(
            "SELECT count(*) FROM reading_assignment WHERE submitted_at IS NULL"
        ).fetchone()[0]
    return {
        "answers_expected": planned * len(questions),
        "answers_stored": answers,
        "lost": sum(1 for key in expected if key not in stored),
        "wrong_value": sum(1 for key, v in expected.items() if key in stored and stored[key] != v),
        "unexpected": sum(1 for key in stored if key not in expected),
        "duplicated": int(duplicated),
        "audit_creates": audit,
        "submissions_expected": planned,
        "submissions": submissions,
        "assignments_unsubmitted": unsubmitted,
        "duplicate_pairs_sent": sum(r.duplicates for r in raters),
        "duplicate_pairs_differing": sum(r.duplicate_mismatches for r in raters),
        "not_accepted": sum(len(r.unaccepted) for r in raters),
    }


def integrity_ok(check: dict[str, int]) -> bool:
    return (
        check["answers_stored"] == check["answers_expected"]
        and check["audit_creates"] == check["answers_stored"]
        and check["submissions"] == check["submissions_expected"]
        and not any(
            check[k]
            for k in (
                "lost",
                "wrong_value",
                "unexpected",
                "duplicated",
                "assignments_unsubmitted",
                "duplicate_pairs_differing",
                "not_accepted",
            )
        )
    )


# --- the whole run ------------------------------------------------------------------------


@dataclass
class Result:
    baselines: list[Phase]
    submit: Phase
    integrity: dict[str, int]
    setup_seconds: float
    server_log_tail: str = ""  # the server's warnings and errors, if any

    @property
    def integrity_ok(self) -> bool:
        return integrity_ok(self.integrity)


def run_benchmark(
    raters: int = 50,
    items_per_rater: int = 20,
    workers: int = 3,
    threads: int = 4,
    think_ms: float = 1000.0,
    duplicate_fraction: float = 0.1,
    server_url: str | None = None,
    max_seconds: float = 600.0,
    client_processes: int = 4,
) -> Result:
    server_url = server_url or os.environ.get("DATABASE_URL") or DEFAULT_SERVER
    if not server_url.startswith(("postgres://", "postgresql://")):
        raise ValueError(f"needs PostgreSQL, got {server_url.split(':')[0]}")
    name = f"kneestudy_bench_{os.getpid()}_{secrets.token_hex(3)}"
    db_url = database_url(server_url, name)
    duplicate_every = round(1 / duplicate_fraction) if duplicate_fraction > 0 else 0
    create_database(server_url, name)
    server = None
    try:
        with tempfile.TemporaryDirectory(prefix="bench-reading-") as tmp:
            scratch = Path(tmp)
            env = app_environment(db_url, scratch)
            (scratch / "static").mkdir()
            port, log = free_port(), scratch / "gunicorn.log"
            started = time.perf_counter()
            # The server imports the app while the child migrates and builds the study.
            server = start_server(env, port, workers, threads, log)
            plan = run_setup(env, raters, items_per_rater, timeout=max_seconds)
            wait_until_serving(server, port, log, timeout=max_seconds)
            setup_seconds = time.perf_counter() - started
            people = [Rater(i, r["token"], r["assignments"]) for i, r in enumerate(plan["raters"])]
            questions = plan["questions"]
            load = LoadPlan(
                port, questions, think_ms, duplicate_every, time.monotonic() + max_seconds
            )
            phases, people = run_clients(load, people, client_processes)
            baselines, submit = phases[:-1], phases[-1]
            stop_server(server)
            check = integrity(db_url, people, questions)
            return Result(baselines, submit, check, setup_seconds, log.read_text()[-4000:])
    finally:
        if server is not None:
            stop_server(server)
        drop_database(server_url, name)


def _table_row(name: str, row: dict[str, float]) -> str:
    return (
        f"{name:<46}{row['requests']:>9}{row['errors']:>7}{row['p50']:>8.1f}"
        f"{row['p95']:>8.1f}{row['p99']:>8.1f}{row['max']:>9.1f}{row['rps']:>8.1f}"
    )


def print_report(result: Result, args: argparse.Namespace) -> None:
    print(
        f"{args.raters} raters x {args.items_per_rater} items x 3 questions; gunicorn "
        f"{args.workers} gthread workers x {args.threads} threads; think time "
        f"{args.think_ms:.0f} ms +-50% per rater; duplicates {args.duplicates:.0%}; "
        f"{args.client_processes} client processes; "
        f"set-up {result.setup_seconds:.0f} s"
    )
    header = (
        f"{'endpoint (latency in ms)':<46}{'requests':>9}{'errors':>7}"
        f"{'p50':>8}{'p95':>8}{'p99':>8}{'max':>9}{'req/s':>8}"
    )
    print(header + "\n" + "-" * len(header))
    for phase in [*result.baselines, result.submit]:
        print(_table_row(phase.name, phase.row()))
    for tag, label in (
        ("", "  of which single sends"),
        (DUPLICATE, "  of which sent twice at once"),
    ):
        print(_table_row(label, result.submit.row(tag)).replace(" nan", "   -"))
    sub = result.submit.row()
    for phase in result.baselines:
        base = phase.row()
        print(
            f"submit vs {phase.name.removeprefix('baseline: ')}: "
            f"p50 x{sub['p50'] / base['p50']:.2f}, p95 x{sub['p95'] / base['p95']:.2f}"
        )
    for phase in [*result.baselines, result.submit]:
        if phase.errors:
            print(f"{phase.name}: statuses {dict(phase.statuses)} (retried with the same key)")
    print("integrity: " + ", ".join(f"{k}={v}" for k, v in result.integrity.items()))
    timing_ok = timing_passed(result)
    print(
        f"limits: submit p95 <= {LIMIT_P95_MS:.0f} ms and no errors -> "
        f"{'PASS' if timing_ok else 'FAIL'}; integrity -> {'PASS' if result.integrity_ok else 'FAIL'}"
    )
    failed = any(p.errors for p in [*result.baselines, result.submit]) or not result.integrity_ok
    if failed and result.server_log_tail.strip():
        print("server log (tail):\n" + result.server_log_tail)


def timing_passed(result: Result) -> bool:
    row = result.submit.row()
    return row["p95"] <= LIMIT_P95_MS and row["errors"] == 0


def print_summary(results: list[Result]) -> None:
    """Run-to-run spread: one line per run, then how many runs met the limits."""
    print(f"\nsummary of {len(results)} runs (submit latency in ms)")
    print(f"{'run':>4}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>9}  timing  integrity")
    for number, result in enumerate(results, start=1):
        row = result.submit.row()
        print(
            f"{number:>4}{row['p50']:>8.1f}{row['p95']:>8.1f}{row['p99']:>8.1f}{row['max']:>9.1f}"
            f"  {'PASS' if timing_passed(result) else 'FAIL':<6}  "
            f"{'PASS' if result.integrity_ok else 'FAIL'}"
        )
    passed = sum(timing_passed(r) and r.integrity_ok for r in results)
    print(f"{passed} of {len(results)} runs met p95 <= {LIMIT_P95_MS:.0f} ms with intact data")


def machine_load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raters", type=positive_int, default=50)
    parser.add_argument("--items-per-rater", type=positive_int, default=20)
    parser.add_argument("--workers", type=positive_int, default=3)
    parser.add_argument("--threads", type=positive_int, default=4)
    parser.add_argument("--think-ms", type=float, default=1000.0)
    parser.add_argument("--duplicates", type=float, default=0.1, help="share sent twice at once")
    parser.add_argument("--database-url", default=None, help="PostgreSQL server (any database)")
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument(
        "--client-processes",
        type=positive_int,
        default=4,
        help="load generator processes (1: threads only)",
    )
    parser.add_argument(
        "--runs",
        type=positive_int,
        default=1,
        help="repeat with a fresh database and server each time",
    )
    return parser.parse_args(argv)


def main() -> None:
    args = parse_arguments()
    results = []
    for number in range(1, args.runs + 1):
        if args.runs > 1:
            print(f"\n=== run {number} of {args.runs}")
        print(f"before: {machine_load()}")
        result = run_benchmark(
            args.raters,
            args.items_per_rater,
            args.workers,
            args.threads,
            args.think_ms,
            args.duplicates,
            args.database_url,
            args.max_seconds,
            args.client_processes,
        )
        print_report(result, args)
        print(f"after: {machine_load()}")
        results.append(result)
    if args.runs > 1:
        print_summary(results)


if __name__ == "__main__":
    main()
