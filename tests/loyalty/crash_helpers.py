"""The API in a real server process that a test can kill, and a stream of calls that kills it half way.

The server is ``python -m uvicorn --factory datong.api.app:create_app`` started with ``Popen`` and no
shell, so the pid the test holds is the server's own (no wrapper in between): a SIGKILL to it is a crash
of the process that holds the database connections and the transactions in flight.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

from datong.core.db import Database

READY_WITHIN_S = 30.0  # a bound on the start-up poll, never a condition of correctness


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """One uvicorn process serving the API on a free port, its output in ``log``."""

    def __init__(self, *, database_url: str, master_key: str, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("DATONG_") or key.startswith("DATONG_TEST_")
        }
        env |= {"DATONG_DATABASE_URL": database_url, "DATONG_MASTER_KEY": master_key, "PYTHONUNBUFFERED": "1"}
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "datong.api.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        with log.open("ab") as out:
            self.proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid

    def wait_ready(self) -> None:
        """Polls /healthz until the server answers; fails if the process dies or never answers."""
        deadline = time.monotonic() + READY_WITHIN_S
        with httpx.Client(base_url=self.url, timeout=2.0) as client:
            while True:
                if self.proc.poll() is not None:
                    raise AssertionError(f"the server exited with {self.proc.returncode}:\n{self.output()}")
                try:
                    if client.get("/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"the server did not answer /healthz:\n{self.output()}")
                time.sleep(0.05)

    def crash(self) -> None:
        """SIGKILL: no shutdown, no rollback, no flush; the operating system closes its sockets."""
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        """For ``finally``: kill the process if it still runs, and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)

    def output(self) -> str:
        return self.log.read_text("utf-8", errors="replace")[-5000:]


def tagged_url(database: Database, name: str) -> str:
    """The database's URL for a server process; on PostgreSQL its connections carry ``name`` as their
    application_name, so that :func:`wait_until_gone` can tell them apart."""
    url = make_url(database.url)
    if url.get_backend_name() != "postgresql":
        return database.url
    return url.update_query_dict({"application_name": name}).render_as_string(hide_password=False)


def wait_until_gone(database: Database, name: str) -> None:
    """After a crash, until PostgreSQL has ended every backend of the dead process (each one ends when
    it next meets its closed socket): before that, a COMMIT the process sent just before it died may
    still be under way, and a read could miss it. A SQLite writer is gone when its process is."""
    if database.engine.dialect.name != "postgresql":
        return
    deadline = time.monotonic() + READY_WITHIN_S
    query = text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name")
    while True:
        with database.engine.connect() as conn:
            if conn.scalar(query, {"name": name}) == 0:
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"PostgreSQL still has backends of the killed server {name}")
        time.sleep(0.05)


@dataclass(frozen=True)
class Call:
    """One write, with its own Idempotency-Key, sent again with the same key and body after the crash."""

    key: str
    kind: str  # earn | redeem
    member_id: str
    body: dict[str, Any]

    @property
    def path(self) -> str:
        return f"/api/v1/points/{self.kind}"


@dataclass
class StreamOutcome:
    """What the client saw before the crash."""

    confirmed: dict[str, dict[str, Any]] = field(default_factory=dict)  # key → the 200 answer
    lost: set[str] = field(default_factory=set)  # sent, but the connection broke: no answer
    unsent: set[str] = field(default_factory=set)  # never sent: the server was gone
    in_flight_at_kill: set[str] = field(default_factory=set)  # sent, not answered when SIGKILL went
    unexpected: dict[str, tuple[int, str]] = field(default_factory=dict)  # key → any other answer


def stream_until_crash(
    server: Server, headers: dict[str, str], calls: list[Call], *, kill_after: int, threads: int
) -> StreamOutcome:
    """Sends ``calls`` from ``threads`` clients at once. Once ``kill_after`` answers are confirmed and
    at least one request is out, the server is killed (SIGKILL); calls not yet started are not sent."""
    outcome = StreamOutcome()
    pending = list(reversed(calls))
    in_flight: set[str] = set()
    cond = threading.Condition()
    state = {"killed": False, "finished": 0}

    def client_loop() -> None:
        with httpx.Client(base_url=server.url, headers=headers, timeout=30.0) as client:
            while True:
                with cond:
                    if state["killed"] or not pending:
                        break
                    call = pending.pop()
                    in_flight.add(call.key)
                    cond.notify_all()
                answer: httpx.Response | None = None
                body: dict[str, Any] | None = None
                try:
                    answer = client.post(call.path, json=call.body, headers={"Idempotency-Key": call.key})
                    body = answer.json() if answer.status_code == 200 else None
                except (httpx.TransportError, ValueError):
                    answer, body = None, None
                with cond:
                    in_flight.discard(call.key)
                    if answer is None:
                        outcome.lost.add(call.key)
                    elif body is not None:
                        outcome.confirmed[call.key] = body
                    else:
                        outcome.unexpected[call.key] = (answer.status_code, answer.text)
                    cond.notify_all()
        with cond:
            state["finished"] += 1
            cond.notify_all()

    workers = [threading.Thread(target=client_loop, name=f"crash-client-{n}") for n in range(threads)]
    for worker in workers:
        worker.start()
    try:
        with cond:
            ready = cond.wait_for(
                lambda: (
                    (len(outcome.confirmed) >= kill_after and bool(in_flight))
                    or state["finished"] == threads
                    or bool(outcome.unexpected)
                ),
                timeout=120,
            )
            assert ready, "the stream neither reached the kill point nor finished"
            assert not outcome.unexpected, f"answers other than 200 before the crash: {outcome.unexpected}"
            assert state["finished"] < threads, "every call was answered before the kill point"
            outcome.in_flight_at_kill = set(in_flight)
            state["killed"] = True
            server.crash()  # under the lock: no thread records an answer, or starts a call, meanwhile
    finally:
        with cond:
            state["killed"] = True
        for worker in workers:
            worker.join(timeout=60)
    outcome.unsent = {c.key for c in calls} - set(outcome.confirmed) - outcome.lost - set(outcome.unexpected)
    assert not outcome.unexpected, f"answers other than 200 during the crash: {outcome.unexpected}"
    return outcome


def send_all(
    url: str, headers: dict[str, str], calls: list[Call], *, threads: int
) -> dict[str, tuple[int, Any]]:
    """Sends every call once (``threads`` at a time) and returns key → (status, JSON body)."""
    answers: dict[str, tuple[int, Any]] = {}
    queue = list(reversed(calls))
    lock = threading.Lock()

    def loop() -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=30.0) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    call = queue.pop()
                try:
                    answer = client.post(call.path, json=call.body, headers={"Idempotency-Key": call.key})
                    result: tuple[int, Any] = (answer.status_code, answer.json())
                except (httpx.HTTPError, ValueError) as exc:
                    result = (0, repr(exc))
                with lock:
                    answers[call.key] = result

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    return answers
