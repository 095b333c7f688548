"""What the HTTP benches against PostgreSQL share (``bench/pos_api.py``, ``bench/coupon_redeem.py``).

The throwaway cluster of ``scripts/postgres.sh`` and databases on it, a brand seeded with N members
from a POS export (four stores, the points program of the tests, opening balances), API keys, the API
under uvicorn as a subprocess, a keep-alive HTTP caller per thread, percentiles, a description of the
machine and the rows of ``bench/RESULTS.md``.
"""

from __future__ import annotations

import contextlib
import csv
import http.client
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


RESULTS = ROOT / "bench" / "RESULTS.md"


# A fixed key for the bench database only (so --reuse-db can read what an earlier run wrote).
MASTER_KEY = "YmVuY2gtb25seS1rZXktZGF0b25nLXBvcy1hcGktMDE="


TENANT = "bench"


SOURCE = "pos_hq"  # the POS system the cards come from: the card numbers' namespace


ACTOR = "system:bench"


STORES = ("D1", "D2", "F1", "F2")


ORG: dict[str, Any] = {
    "agents": [{"code": "AG1", "name": "厦门代理"}],
    "stores": [
        {"code": "D1", "name": "直营一店", "kind": "direct", "city": "上海"},
        {"code": "D2", "name": "直营二店", "kind": "direct", "city": "杭州"},
        {"code": "F1", "name": "加盟一店", "kind": "franchise", "agent_code": "AG1", "city": "厦门"},
        {"code": "F2", "name": "加盟二店", "kind": "franchise", "agent_code": "AG1", "city": "泉州"},
    ],
}


CATALOGUE = (  # (title, sku, category, unit price in fen)
    ("跑步鞋", "SH-001", "shoes", 59900),
    ("帆布鞋", "SH-002", "shoes", 29900),
    ("纯棉T恤", "TP-001", "tops", 9900),
    ("卫衣", "TP-002", "tops", 19900),
    ("牛仔裤", "BT-001", "bottoms", 25900),
    ("袜子三双装", "AC-001", "accessories", 3900),
    ("棒球帽", "AC-002", "accessories", 7900),
)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def card_no(index: int) -> str:
    return f"C{index:08d}"


def phone(index: int) -> str:
    return f"139{10_000_000 + index:08d}"


def server_url(given: str | None) -> str:
    """A SQLAlchemy URL of the server (any database on it): the one given, or the script's cluster."""
    if given:
        return given
    script = str(ROOT / "scripts" / "postgres.sh")
    subprocess.run(["bash", script, "start"], check=True, cwd=ROOT)
    found = subprocess.run(["bash", script, "url"], check=True, cwd=ROOT, capture_output=True, text=True)
    return found.stdout.strip()


def with_database(url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


def libpq(url: str) -> dict[str, Any]:
    """psycopg connection arguments for a SQLAlchemy URL."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    params: dict[str, Any] = {
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 5432,
        "user": parsed.username,
        "dbname": parsed.database,
    }
    if parsed.password:
        params["password"] = parsed.password
    return params


def admin_query(url: str, sql: str, *params: Any) -> Any:
    """Run one statement on the server's ``postgres`` database (autocommit); the first row, if any."""
    import psycopg

    with psycopg.connect(**libpq(with_database(url, "postgres")), autocommit=True) as conn:
        cursor = conn.execute(sql, params or None)
        return cursor.fetchone() if cursor.description else None


def recreate_database(url: str, name: str) -> None:
    admin_query(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin_query(url, f'CREATE DATABASE "{name}"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def runtime_for(url: str) -> Any:
    from datong.core.config import Settings
    from datong.core.context import load_runtime
    from datong.core.registry import load_models

    load_models()  # every table known before the first flush, whichever domain it starts in
    return load_runtime(Settings(database_url=url, master_key=MASTER_KEY, key_file=None))


def seed_brand(rt: Any, url: str, members: int) -> str:
    """Migrate the empty database at ``url``, then the brand, its stores and program, and ``members`` POS
    cards with balances; the brand's id."""
    from faker import Faker
    from sqlalchemy import func, select

    from datong.core.migrate import upgrade
    from datong.demo.program import DEMO_PROGRAM
    from datong.jobs.imports import ImportRequest, run_import
    from datong.loyalty.migration import migrate_balances
    from datong.loyalty.programs import get_program, load_program
    from datong.members.models import Member
    from datong.org.service import load_org
    from datong.tenancy.service import create_tenant

    started = time.perf_counter()
    upgrade(url)
    with rt.db.unit_of_work() as s:
        tenant_id: str = create_tenant(s, code=TENANT, name="基准品牌").id
        load_org(s, tenant_id=tenant_id, actor=ACTOR, data=ORG)
        load_program(s, tenant_id=tenant_id, data=DEMO_PROGRAM, actor=ACTOR)
    fake = Faker("zh_CN")
    fake.seed_instance(20261123)
    rng = random.Random(20261123)
    say(f"seeding {members:,} members into {libpq(url)['dbname']} (POS export import, then opening balances)")
    with tempfile.TemporaryDirectory(prefix="datong-pos-bench-") as work:
        export = Path(work) / "members.csv"
        with export.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["会员卡号", "姓名", "手机号", "所属门店", "积分余额"])
            for index in range(members):
                store = STORES[index % len(STORES)]
                writer.writerow([card_no(index), fake.name(), phone(index), store, rng.randint(200, 5000)])
        batch = run_import(
            rt.db,
            rt.keyring,
            ImportRequest(tenant_id=tenant_id, kind="members", path=export, source=SOURCE, actor=ACTOR),
            chunk_rows=5000,
        )
    imported = time.perf_counter()
    say(f"  imported {batch.rows_seen:,} cards ({batch.rows_failed} failed) in {imported - started:.1f}s")
    with rt.db.unit_of_work() as s:
        result = migrate_balances(s, program=get_program(s, tenant_id=tenant_id), actor=ACTOR)
    say(
        f"  migrated {result.cards:,} opening balances ({result.points:,} points, "
        f"{result.unresolved} unresolved) in {time.perf_counter() - imported:.1f}s"
    )
    with rt.db.reading() as s:
        count = s.scalar(select(func.count()).select_from(Member).where(Member.tenant_id == tenant_id))
    if count != members or result.cards != members:
        raise SystemExit(f"seeding made {count} members and {result.cards} balances, not {members} each")
    with rt.db.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
    return tenant_id


def new_api_key(rt: Any, tenant_id: str, scopes: Sequence[str] | None = None) -> str:
    """A brand-wide key for the brand's POS system (no store: it names the store on every call), with
    the points scopes unless ``scopes`` are given."""
    from datong.tenancy import rules
    from datong.tenancy.service import create_api_key

    with rt.db.unit_of_work() as s:
        secret, _key = create_api_key(
            s,
            tenant_id=tenant_id,
            name=f"bench POS {date.today().isoformat()}",
            scopes=list(scopes or (rules.MEMBERS_READ, rules.POINTS_READ, rules.POINTS_WRITE)),
            actor=ACTOR,
        )
    return str(secret)


# (method, path, JSON body or None, extra headers) → (status, parsed answer or the raw text)
Call = Callable[[str, str, dict[str, Any] | None, dict[str, str]], tuple[int, Any]]


def http_caller(port: int, api_key: str) -> Call:
    """A keep-alive HTTP/1.1 connection of one thread (the standard library's: light on the CPU the
    server needs too). A broken connection is one error and a new connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    base = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}

    def call(method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]) -> tuple[int, Any]:
        nonlocal connection
        data = json.dumps(body).encode() if body is not None else None
        sent = {**base, **headers}
        if data is not None:
            sent["Content-Type"] = "application/json"
        try:
            connection.request(method, path, body=data, headers=sent)
            response = connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            return 0, f"{type(exc).__name__}: {exc}"
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, raw.decode(errors="replace")

    return call


def percentile(values: list[float], fraction: float) -> float:
    """Nearest rank: the smallest value with at least ``fraction`` of the values at or below it."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), int(-(-fraction * len(ordered) // 1))))
    return ordered[rank - 1]


class ApiServer:
    """uvicorn with the datong app in its own process group, stopped (the group) whatever happens."""

    def __init__(self, url: str, *, port: int, workers: int, keep_alive: int | None = None) -> None:
        """``keep_alive``: seconds an idle connection stays open (uvicorn's default, 5, if None)."""
        self.port = port
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (read after the server stops, closed then)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DATONG_")}
        env.update(DATONG_DATABASE_URL=url, DATONG_MASTER_KEY=MASTER_KEY)
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "datong.api.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        if keep_alive is not None:
            command += ["--timeout-keep-alive", str(keep_alive)]
        say(f"starting the API: {workers} uvicorn worker(s) on 127.0.0.1:{port}")
        self.process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, timeout: float = 90) -> None:
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            if self.process.poll() is not None:
                raise RuntimeError(f"the API server exited with {self.process.returncode}:\n{self.output()}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    connection.close()
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"the API server did not answer /healthz within {timeout:.0f}s:\n{self.output()}")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
                try:
                    os.killpg(self.process.pid, sig)  # the group is the one this process leads
                except ProcessLookupError:
                    break
                try:
                    self.process.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue


def ms(seconds: float) -> float:
    return seconds * 1000


def describe_machine(server: str) -> str:
    cores = os.cpu_count() or 0
    with contextlib.suppress(AttributeError):  # not on every platform
        cores = len(os.sched_getaffinity(0))
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f", {int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    version = admin_query(server, "SHOW server_version")[0].split()[0]
    fsync = admin_query(server, "SHOW fsync")[0]
    durability = " (fsync off)" if fsync == "off" else ""
    return f"{cores} cores{mem}, Python {platform.python_version()}, PostgreSQL {version}{durability}"


def record(section: str, intro: str, row: str) -> None:
    """Append the row to a bench's table in RESULTS.md (the section, ``intro`` and the table's head
    are added at the end if absent)."""
    text = RESULTS.read_text(encoding="utf-8")
    if section not in text.splitlines():
        text = text.rstrip("\n") + (
            f"\n\n{section}\n\n{intro.strip()}\n\n| date | machine | command | figure |\n|---|---|---|---|\n"
        )
    lines = text.splitlines()
    start = lines.index(section)
    at = start + 1
    while at < len(lines) and not lines[at].startswith("|"):
        at += 1
    while at < len(lines) and lines[at].startswith("|"):
        at += 1
    lines.insert(at, row)
    RESULTS.write_text("\n".join(lines) + "\n", encoding="utf-8")
    say(f"recorded in {RESULTS.relative_to(ROOT)}")
