"""The POS mix over HTTP against PostgreSQL, next to pgbench's TPC-B-like script on the same server.

    python bench/pos_api.py [--members 20000] [--seconds 30] [--clients 8] [--workers 2] [--record]

Starts (or reuses) the throwaway cluster of ``scripts/postgres.sh`` unless ``--server-url`` names a
server, and builds a fresh database ``datong_bench`` on it: one brand, four stores, the points program
of the tests, N members imported from a POS export with a card, a phone and an opening balance
(``migrate_balances``), and a brand-wide POS API key. Seeding is not timed.

The timed part runs the API as a subprocess (uvicorn, ``--workers`` processes) and drives it from
``--clients`` threads for ``--seconds`` after a short warm-up. Each thread plays a till: per sale it
looks the member up (by phone or card, alternately), earns for a new order, and on a fraction of sales
(``--redeem-fraction``) spends part of the balance in one step. Every call is one API transaction; the
figure is calls per second with the p50 and p99 latency of a call. A thread owns its own members, so
two tills never spend one balance at once. Then pgbench initialises ``pgbench_bench`` (scale 10) and
runs its built-in script with the same client count for the same time, the API server stopped.

While the API is measured, /proc says how many CPU milliseconds per call went to the API workers, the
bench database's PostgreSQL backends and this client, and how much of the machine other processes took.

The last line is the figure bench/RESULTS.md records; ``--record`` appends it there.
``--profile N`` instead runs N sales in this process and thread (the ASGI app called directly, no HTTP
server, no pgbench): SQL statements by kind and time per call for each endpoint, then cProfile's view.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import random
import re
import secrets
import shlex
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from common import (
    CATALOGUE,
    SOURCE,
    STORES,
    TENANT,
    ApiServer,
    Call,
    admin_query,
    card_no,
    describe_machine,
    free_port,
    http_caller,
    libpq,
    ms,
    new_api_key,
    percentile,
    phone,
    recreate_database,
    runtime_for,
    say,
    seed_brand,
    server_url,
    with_database,
)
from common import record as record_row

SECTION = "## POS points API (`bench/pos_api.py`)"
BENCH_DB = "datong_bench"
PGBENCH_DB = "pgbench_bench"
ENDPOINTS = ("lookup", "earn", "redeem")


# --- the server and its databases ----------------------------------------------------------------


# --- seeding (not timed) --------------------------------------------------------------------------


@dataclass
class Seeded:
    tenant_id: str
    api_key: str
    members: int


def seed(server: str, members: int, *, reuse: bool) -> Seeded:
    """A brand, its stores and program, ``members`` POS cards with balances, and a POS API key."""
    from sqlalchemy import func, select

    from datong.members.models import Member
    from datong.tenancy.models import Tenant

    url = with_database(server, BENCH_DB)
    if reuse and admin_query(server, "SELECT 1 FROM pg_database WHERE datname = %s", BENCH_DB):
        rt = runtime_for(url)
        try:
            with rt.db.reading() as s:
                tenant = s.scalar(select(Tenant).where(Tenant.code == TENANT))
                count = (
                    s.scalar(select(func.count()).select_from(Member).where(Member.tenant_id == tenant.id))
                    if tenant
                    else 0
                )
            if tenant is not None and count == members:
                say(f"reusing {BENCH_DB}: {count:,} members (and the sales of earlier runs)")
                return Seeded(tenant.id, new_api_key(rt, tenant.id), members)
            say(f"{BENCH_DB} holds {count:,} members, not {members:,}: seeding afresh")
        finally:
            rt.db.dispose()
    recreate_database(server, BENCH_DB)
    rt = runtime_for(url)
    try:
        tenant_id = seed_brand(rt, url, members)
        return Seeded(tenant_id, new_api_key(rt, tenant_id), members)
    finally:
        rt.db.dispose()


# --- the POS mix ----------------------------------------------------------------------------------


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[tuple[str, int, str]] = field(default_factory=list)
    sales: int = 0
    last_end: float = 0.0

    def merge(self, other: Tally) -> None:
        for name, values in other.latencies.items():
            self.latencies[name].extend(values)
        self.errors.extend(other.errors)
        self.sales += other.sales
        self.last_end = max(self.last_end, other.last_end)


@dataclass
class Till:
    """One POS client: its own members (index ≡ number mod clients), its own order numbers."""

    number: int
    clients: int
    members: int
    run_id: str
    redeem_fraction: float
    rng: random.Random = field(init=False)
    sequence: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(f"{self.run_id}-{self.number}")

    def sale(self, call: Call, tally: Tally, *, measure_from: float, deadline: float) -> None:
        """Look the member up, earn for a new order, sometimes spend points: one call each."""
        index = self.number + self.clients * self.rng.randrange(
            (self.members - self.number - 1) // self.clients + 1
        )
        self.sequence += 1
        counted = time.perf_counter() >= measure_from
        store = STORES[self.rng.randrange(len(STORES))]
        if self.sequence % 2:
            query = f"kind=phone&value={phone(index)}"
        else:
            query = f"kind=card_no&value={card_no(index)}&namespace={SOURCE}"
        found = self._timed(
            call, tally, "lookup", "GET", f"/api/v1/members/lookup?{query}", None, measure_from
        )
        if not isinstance(found, list) or len(found) != 1:
            if found is not None:
                tally.errors.append(("lookup", 200, f"expected one member, got {str(found)[:200]}"))
            return
        member_id = found[0]["id"]
        if time.perf_counter() >= deadline:
            return
        order_no = f"{self.run_id}-{self.number}-{self.sequence}"
        lines = []
        for title, sku, category, price in self.rng.sample(CATALOGUE, self.rng.randint(1, 3)):
            lines.append(
                {
                    "title": title,
                    "sku": sku,
                    "category": category,
                    "quantity": self.rng.randint(1, 2),
                    "unit_price_fen": price,
                }
            )
        total = sum(line["quantity"] * line["unit_price_fen"] for line in lines)
        order = {
            "channel": "pos",
            "order_no": order_no,
            "store_code": store,
            "status": "completed",
            "total_fen": total,
            "paid_fen": total,
            "lines": lines,
        }
        earned = self._timed(
            call,
            tally,
            "earn",
            "POST",
            "/api/v1/points/earn",
            {"member_id": member_id, "order": order},
            measure_from,
        )
        if not isinstance(earned, dict) or time.perf_counter() >= deadline:
            return
        balance = int(earned.get("balance") or 0)
        if balance > 0 and self.rng.random() < self.redeem_fraction:
            body = {
                "member_id": member_id,
                "points": min(balance, self.rng.randint(50, 800)),
                "channel": "pos",
                "store_code": store,
                "order_no": order_no,
            }
            self._timed(call, tally, "redeem", "POST", "/api/v1/points/redeem", body, measure_from)
        tally.sales += counted

    def _timed(
        self,
        call: Call,
        tally: Tally,
        name: str,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        measure_from: float,
    ) -> Any:
        headers = {"Idempotency-Key": secrets.token_hex(16)} if method == "POST" else {}
        started = time.perf_counter()
        status, answer = call(method, path, body, headers)
        ended = time.perf_counter()
        if started >= measure_from:  # calls started during the warm-up are not counted
            tally.latencies[name].append(ended - started)
            tally.last_end = max(tally.last_end, ended)
            if status != 200:
                tally.errors.append((name, status, str(answer)[:300]))
        return answer if status == 200 else None


def drive(
    make_call: Callable[[], Call],
    *,
    clients: int,
    members: int,
    seconds: float,
    warmup: float,
    redeem_fraction: float,
    sample: Callable[[], CpuSample] | None = None,
) -> tuple[Tally, float, tuple[CpuSample, CpuSample] | None]:
    """Every till sells until the deadline; returns the merged tally, the measured seconds and the CPU
    samples taken when measuring starts and ends."""
    run_id = f"B{int(time.time())}{secrets.token_hex(2)}"
    start = time.perf_counter()
    measure_from = start + warmup
    deadline = measure_from + seconds
    tallies = [Tally() for _ in range(clients)]
    failures: list[BaseException] = []

    def till_loop(number: int) -> None:
        try:
            call = make_call()
            till = Till(number, clients, members, run_id, redeem_fraction)
            while time.perf_counter() < deadline:
                till.sale(call, tallies[number], measure_from=measure_from, deadline=deadline)
        except BaseException as exc:  # reported below: a dead till must not pass unnoticed
            failures.append(exc)

    threads = [threading.Thread(target=till_loop, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    reported = measure_from
    samples: list[CpuSample] = []
    while any(t.is_alive() for t in threads):
        time.sleep(0.05)
        now = time.perf_counter()
        if sample is not None and len(samples) == 0 and now >= measure_from:
            samples.append(sample())
        if sample is not None and len(samples) == 1 and now >= deadline:
            samples.append(sample())
        if now - reported >= 10 and now < deadline:
            reported = now
            calls = sum(len(v) for t in tallies for v in t.latencies.values())
            say(f"  {now - measure_from:5.1f}s: {calls:,} calls, {calls / (now - measure_from):.1f}/s")
    if failures:
        raise RuntimeError(f"{len(failures)} till(s) died: {failures[0]!r}") from failures[0]
    total = Tally()
    for tally in tallies:
        total.merge(tally)
    cpu = (samples[0], samples[1]) if len(samples) == 2 else None
    return total, max(total.last_end - measure_from, 1e-9), cpu


# --- where the CPU went (Linux /proc) -------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass
class CpuSample:
    at: float
    api: float  # CPU seconds of the uvicorn processes
    postgres: dict[int, float]  # backend pid → CPU seconds, for backends of the bench database
    client: float  # this process
    busy: float  # the whole machine, in CPU seconds (all cores)
    total: float


def process_cpu(pid: int) -> float:
    """utime + stime of a process, in seconds (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def processes() -> Iterator[tuple[int, int, str]]:
    """(pid, parent pid, command line) of every process we may read."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        yield int(entry.name), parent, cmdline


def cpu_sampler(api_pid: int, database: str) -> Callable[[], CpuSample]:
    def sample() -> CpuSample:
        api, postgres = process_cpu(api_pid), {}
        for pid, parent, cmdline in processes():
            if parent == api_pid:
                api += process_cpu(pid)
            elif cmdline.startswith("postgres:") and f" {database} " in cmdline:
                postgres[pid] = process_cpu(pid)
        times = os.times()
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return CpuSample(
            time.perf_counter(),
            api,
            postgres,
            times.user + times.system,
            (sum(values) - idle) / TICK,
            sum(values) / TICK,
        )

    return sample


def cpu_report(first: CpuSample, last: CpuSample, calls: int) -> str:
    """CPU milliseconds per API call in each part, and how busy the machine was (others included)."""
    api = last.api - first.api
    postgres = sum(cpu - first.postgres.get(pid, 0.0) for pid, cpu in last.postgres.items())
    client = last.client - first.client
    busy, total = last.busy - first.busy, last.total - first.total
    cores = total / max(last.at - first.at, 1e-9)
    others = max(busy - api - postgres - client, 0.0)
    per = 1000 / max(calls, 1)
    return (
        f"CPU per call: API {api * per:.1f} ms, PostgreSQL {postgres * per:.1f} ms, "
        f"client {client * per:.1f} ms"
        f"; machine {busy / max(total, 1e-9):.0%} busy over {cores:.0f} cores, "
        f"other processes {others / max(last.at - first.at, 1e-9):.2f} cores"
    )


# --- the API server -------------------------------------------------------------------------------


# --- pgbench --------------------------------------------------------------------------------------


def run_pgbench(server: str, *, clients: int, seconds: float, scale: int, binary: str) -> tuple[float, str]:
    """tps of pgbench's built-in TPC-B-like script (without the initial connection time)."""
    recreate_database(server, PGBENCH_DB)
    params = libpq(with_database(server, PGBENCH_DB))
    env = {**os.environ, "PGHOST": params["host"], "PGPORT": str(params["port"]), "PGUSER": params["user"]}
    if "password" in params:
        env["PGPASSWORD"] = params["password"]
    say(f"pgbench: initialising {PGBENCH_DB} at scale {scale}")
    subprocess.run(
        [binary, "-i", "-s", str(scale), "-q", PGBENCH_DB],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    duration = max(1, round(seconds))
    say(f"pgbench: {clients} clients, {min(2, clients)} threads, {duration}s")
    done = subprocess.run(
        [binary, "-c", str(clients), "-j", str(min(2, clients)), "-T", str(duration), PGBENCH_DB],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    output = done.stdout + done.stderr
    found = re.search(
        r"tps = ([0-9.]+) \((?:without initial connection time|excluding connections establishing)\)", output
    ) or re.search(r"tps = ([0-9.]+)", output)
    if found is None:
        raise RuntimeError(f"no tps in pgbench's output:\n{output}")
    admin_query(server, f'DROP DATABASE IF EXISTS "{PGBENCH_DB}" WITH (FORCE)')
    return float(found.group(1)), output


# --- figures and the results file -----------------------------------------------------------------


def report(tally: Tally, measured: float, *, clients: int) -> dict[str, float]:
    everything = [v for values in tally.latencies.values() for v in values]
    calls = len(everything)
    say(f"API: {calls:,} calls ({tally.sales:,} sales) in {measured:.1f}s from {clients} clients")
    for name in ENDPOINTS:
        values = tally.latencies.get(name, [])
        if values:
            say(
                f"  {name:<7} {len(values):>7,} calls {len(values) / measured:8.1f}/s  "
                f"p50 {ms(percentile(values, 0.5)):7.1f} ms  p99 {ms(percentile(values, 0.99)):7.1f} ms  "
                f"max {ms(max(values)):7.1f} ms"
            )
    if tally.errors:
        say(f"ERRORS: {len(tally.errors)} calls did not answer 200")
        for (name, status), count in Counter((n, s) for n, s, _ in tally.errors).most_common():
            example = next(text for n, s, text in tally.errors if (n, s) == (name, status))
            say(f"  {count:>6} × {name} → {status}: {example}")
    return {
        "calls": calls,
        "sales": tally.sales,
        "errors": len(tally.errors),
        "api_tps": calls / measured,
        "p50_ms": ms(percentile(everything, 0.5)),
        "p99_ms": ms(percentile(everything, 0.99)),
    }


def record(row: str) -> None:
    """Append the row to this bench's table in RESULTS.md (the section is added if absent)."""
    record_row(
        SECTION,
        "The POS mix (look up, earn, sometimes redeem) over HTTP, next to pgbench's TPC-B-like script\n"
        "on the same server with the same number of clients.",
        row,
    )


# --- the in-process profile -----------------------------------------------------------------------


def statement_kind(statement: str) -> str:
    """``SELECT member``, ``UPDATE ledger_account``...: the verb and the first table named."""
    text = " ".join(statement.split())
    verb = text.split(" ", 1)[0].upper()
    if verb == "SELECT" and "pg_advisory_xact_lock" in text:
        return "SELECT pg_advisory_xact_lock"
    if verb == "SELECT" and "set_config" in text:
        return "SELECT set_config"
    pattern = {"SELECT": r" FROM (\w+)", "INSERT": r"INSERT INTO (\w+)", "UPDATE": r"UPDATE (\w+)"}.get(
        verb, r" FROM (\w+)"
    )
    found = re.search(pattern, text, re.IGNORECASE)
    lock = " FOR UPDATE" if text.endswith("FOR UPDATE") else ""
    return f"{verb} {found.group(1) if found else '?'}{lock}"


def package_of(filename: str) -> str:
    """``sqlalchemy``, ``datong.loyalty``, ``stdlib``...: where a profiled function lives."""
    path = filename.replace("\\", "/")
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/src/datong/" in path:
        return "datong." + path.split("/src/datong/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if path.startswith("<") or path == "~":
        return "builtins"
    return "bench" if path.endswith("pos_api.py") else "stdlib"


def profile(server: str, seeded: Seeded, *, sales: int, redeem_fraction: float, top: int) -> None:
    """N sales in this process and thread, twice: first counting statements and timing each call (no
    profiler), then under cProfile, which sees the app's work because nothing runs in a worker thread."""
    import asyncio

    import anyio.to_thread
    import httpx
    from sqlalchemy import event

    from datong.api.app import create_app

    async def inline(func: Callable[..., Any], *args: Any, **_options: Any) -> Any:
        return func(*args)  # sync routes and dependencies run here, not in a worker thread

    anyio.to_thread.run_sync = inline  # type: ignore[assignment]
    rt = runtime_for(with_database(server, BENCH_DB))
    app = create_app(rt)
    loop = asyncio.new_event_loop()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench")
    counting = [False]
    current = [""]
    per: dict[str, Counter[str]] = defaultdict(Counter)  # endpoint → statement kind → count
    db_seconds: Counter[str] = Counter()
    wall: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    checkouts: Counter[str] = Counter()
    commits: Counter[str] = Counter()

    @event.listens_for(rt.db.engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if counting[0]:
            per[current[0]][statement_kind(statement)] += 1
        conn.info["bench_t0"] = time.perf_counter()

    @event.listens_for(rt.db.engine, "after_cursor_execute")
    def _after(conn: Any, *args: Any) -> None:
        if counting[0]:
            db_seconds[current[0]] += time.perf_counter() - conn.info.pop("bench_t0", time.perf_counter())

    @event.listens_for(rt.db.engine, "checkout")
    def _checkout(*args: Any) -> None:
        checkouts[current[0]] += counting[0]

    @event.listens_for(rt.db.engine, "commit")
    def _commit(*args: Any) -> None:
        commits[current[0]] += counting[0]

    names = {
        "/api/v1/members/lookup": "lookup",
        "/api/v1/points/earn": "earn",
        "/api/v1/points/redeem": "redeem",
    }

    def call(method: str, path: str, body: dict[str, Any] | None, headers: dict[str, str]) -> tuple[int, Any]:
        name = names.get(path.split("?", 1)[0], "summary")
        current[0] = name
        calls[name] += counting[0]
        started = time.perf_counter()
        response = loop.run_until_complete(
            client.request(
                method, path, json=body, headers={"Authorization": f"Bearer {seeded.api_key}", **headers}
            )
        )
        wall[name] += (time.perf_counter() - started) * counting[0]
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.text

    tally = Tally()
    till = Till(0, 1, seeded.members, f"P{int(time.time())}", redeem_fraction)

    def sell(count: int, offset: int) -> None:
        for _ in range(count):
            till.sale(call, tally, measure_from=0, deadline=float("inf"))
        for index in range(offset, offset + min(seeded.members - offset, 20)):
            status, found = call("GET", f"/api/v1/members/lookup?kind=phone&value={phone(index)}", None, {})
            if status == 200 and len(found) == 1:
                call("GET", f"/api/v1/points/members/{found[0]['id']}", None, {})

    sell(20, 0)  # imports, caches and the first connections are not what a call costs
    tally = Tally()
    counting[0] = True
    sell(sales, 20)
    counting[0] = False
    profiler = cProfile.Profile()
    profiler.enable()
    sell(sales, 40)
    profiler.disable()
    loop.run_until_complete(client.aclose())
    loop.close()
    rt.db.dispose()

    print(f"in-process: {sales} sales and {calls['summary']} balance queries, one at a time")
    print(f"errors: {len(tally.errors)}")
    for name, status, text in tally.errors[:5]:
        print(f"  error: {name} → {status}: {text}")
    print("per call: SQL statements, pool checkouts (each pre-pings), commits, time in the database, total")
    for name in (*ENDPOINTS, "summary"):
        n = calls[name]
        if not n:
            continue
        statements = sum(per[name].values())
        print(
            f"  {name:<8} {n:>5} calls  {statements / n:5.1f} statements  "
            f"{checkouts[name] / n:.1f} checkouts  {commits[name] / n:.1f} commits  "
            f"db {ms(db_seconds[name] / n):6.2f} ms  total {ms(wall[name] / n):6.2f} ms"
        )
        for kind, count in per[name].most_common():
            print(f"      {count / n:5.2f}  {kind}")
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    by_package: Counter[str] = Counter()
    for (filename, _line, _name), (_cc, _nc, own, _cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        by_package[package_of(filename)] += own
    profiled = sum(by_package.values())
    print(f"own time by package under cProfile ({profiled:.1f}s in all; the DB waits are in psycopg):")
    for package, seconds in by_package.most_common(12):
        print(f"  {seconds / profiled:6.1%}  {package}")
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(r"datong", top)
    print(out.getvalue())


# --- main -----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=30, help="measured time, API and pgbench each")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of API calls before measuring")
    parser.add_argument("--clients", type=int, default=8, help="concurrent tills, and pgbench clients")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--redeem-fraction", type=float, default=0.3)
    parser.add_argument("--pgbench-scale", type=int, default=10)
    parser.add_argument("--pgbench", default="pgbench", help="the pgbench binary")
    parser.add_argument("--server-url", default=None, help="default: scripts/postgres.sh's cluster")
    parser.add_argument("--reuse-db", action="store_true", help=f"keep {BENCH_DB} if it has --members")
    parser.add_argument("--record", action="store_true", help="append the figure to bench/RESULTS.md")
    parser.add_argument("--profile", type=int, metavar="SALES", default=0, help="profile SALES in process")
    parser.add_argument("--top", type=int, default=25, help="functions listed by --profile")
    args = parser.parse_args()
    if args.members < args.clients or args.clients < 1:
        parser.error("--members must be at least --clients, which is at least 1")

    server = server_url(args.server_url)
    url = with_database(server, BENCH_DB)
    seeded = seed(server, args.members, reuse=args.reuse_db)
    if args.profile:
        profile(server, seeded, sales=args.profile, redeem_fraction=args.redeem_fraction, top=args.top)
        return

    api = ApiServer(url, port=free_port(), workers=args.workers)
    try:
        api.wait_ready()
        say(f"driving the POS mix: {args.clients} tills, {args.warmup:.0f}s warm-up, {args.seconds:.0f}s")
        tally, measured, cpu = drive(
            lambda: http_caller(api.port, seeded.api_key),
            clients=args.clients,
            members=args.members,
            seconds=args.seconds,
            warmup=args.warmup,
            redeem_fraction=args.redeem_fraction,
            sample=cpu_sampler(api.process.pid, BENCH_DB) if Path("/proc/stat").exists() else None,
        )
    finally:
        api.stop()
    server_log = api.output()
    api.log.close()
    if "Traceback" in server_log:
        say("the API server logged errors:\n" + server_log[-4000:])
    figures = report(tally, measured, clients=args.clients)
    cpu_line = cpu_report(*cpu, calls=int(figures["calls"])) if cpu else ""
    if cpu_line:
        say(cpu_line)
    pg_tps, _output = run_pgbench(
        server, clients=args.clients, seconds=args.seconds, scale=args.pgbench_scale, binary=args.pgbench
    )
    ratio = figures["api_tps"] / pg_tps
    error_rate = figures["errors"] / max(figures["calls"], 1)
    summary = (
        f"calls={figures['calls']} sales={figures['sales']} errors={figures['errors']} "
        f"error_rate={error_rate:.2%} members={args.members} clients={args.clients} workers={args.workers}"
    )
    if figures["errors"]:
        summary = f"ERRORS: {summary}"
    figure = (
        f"api_tps={figures['api_tps']:.1f} pgbench_tps={pg_tps:.1f} ratio={ratio:.3f} "
        f"p50_ms={figures['p50_ms']:.1f} p99_ms={figures['p99_ms']:.1f}"
    )
    if args.record:
        argv = [a for a in sys.argv[1:] if a != "--record"]
        command = shlex.join(["python", "bench/pos_api.py", *argv])
        note = (
            f"{args.members:,} members, {args.clients} clients, {args.workers} workers; "
            f"{figures['sales']:,} sales, {figures['sales'] / measured:.1f} sales/s; "
            f"errors {figures['errors']}" + (f"; {cpu_line}" if cpu_line else "")
        )
        record(
            f"| {date.today().isoformat()} | {describe_machine(server)} | `{command}` | `{figure}` ({note}) |"
        )
    print(summary, flush=True)
    print(figure, flush=True)
    if figures["errors"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
