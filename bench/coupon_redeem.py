"""Coupon validate + redeem (核销) at the POS over HTTP against PostgreSQL, and exactly-once under races.

    python bench/coupon_redeem.py [--members 10000] [--seconds 30] [--clients 8] [--workers 2] [--record]

Starts (or reuses) the throwaway cluster of ``scripts/postgres.sh`` unless ``--server-url`` names a
server, and builds a fresh database ``datong_coupon_bench`` on it: the brand, stores and N members of
``bench/pos_api.py`` (POS export import, opening balances), a threshold template 满198减20 (valid 30
days, no budget), one coupon per member issued with ``issue_coupon`` (a batch per transaction), and a
brand-wide POS key with members:read, coupons:read and coupons:write. Seeding is not timed.

The timed part runs the API as a subprocess (uvicorn, ``--workers`` processes) and drives it from
``--clients`` threads for ``--seconds`` after a short warm-up. Each thread plays a till with its own
share of the coupons (coupon index ≡ thread number mod clients): per sale a basket of one to four lines
of at least 198 yuan at one of the stores, ``POST /coupons/validate`` (it must apply, for 20 yuan), then
``POST /coupons/redeem`` with a new Idempotency-Key. On ``--double-fraction`` of the sales the redeem is
sent twice at once, from the till and from its partner thread (its own connection), with different
Idempotency-Keys and order numbers for the same code: exactly one must answer 200 and the other 409
(counted as ``refused_doubles``, not as errors). Any other answer is an error: listed, and exit 1.

``redeem_rps`` counts redeems answered 200 per second; p50/p99 are of those redeem calls. After the
run, ``double_redemptions`` is counted in the database: coupons with more than one redemption not
reversed. The last line is the figure bench/RESULTS.md records; ``--record`` appends it there.
"""

from __future__ import annotations

import argparse
import queue
import random
import secrets
import shlex
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from common import (
    ACTOR,
    CATALOGUE,
    STORES,
    ApiServer,
    Call,
    describe_machine,
    free_port,
    http_caller,
    libpq,
    ms,
    new_api_key,
    percentile,
    record,
    recreate_database,
    runtime_for,
    say,
    seed_brand,
    server_url,
    with_database,
)

SECTION = "## Coupon redemption (`bench/coupon_redeem.py`)"
INTRO = """\
Coupon validate + redeem (核销) at the POS over HTTP against PostgreSQL: the brand and N members of the
POS bench, a threshold template 满198减20 (30 days, no budget) and one coupon per member issued with
`issue_coupon`, the API under uvicorn (2 workers), and C threads playing tills, each with its own share
of the coupons: per sale a basket of one to four lines (at least 198 yuan) at one of four stores,
`POST /coupons/validate`, then `POST /coupons/redeem` with a new Idempotency-Key. On 10% of the sales
the redeem is sent twice at once from two threads (different keys and order numbers, the same code):
one must answer 200 and the other 409 (`refused_doubles` in the notes). `redeem_rps` counts redeems
answered 200 per second, p50/p99 are per redeem call; `double_redemptions` is counted in the database
after the run (coupons with more than one redemption not reversed). Seeding is not timed."""
BENCH_DB = "datong_coupon_bench"
TEMPLATE = "BENCH-198-20"
THRESHOLD_FEN = 19800
DISCOUNT_FEN = 2000
ISSUE_BATCH = 1000
VALIDATE = "/api/v1/coupons/validate"
REDEEM = "/api/v1/coupons/redeem"
SCOPES = ("members:read", "coupons:read", "coupons:write")


# --- seeding (not timed) --------------------------------------------------------------------------


@dataclass
class Seeded:
    tenant_id: str
    api_key: str
    coupons: list[tuple[str, str]]  # (member id, coupon code), in member id order


def seed(server: str, members: int) -> Seeded:
    """The brand of the POS bench with ``members`` members, the template, a coupon each, and a key."""
    from sqlalchemy import select

    from datong.coupons import service
    from datong.coupons.schemas import TemplateIn
    from datong.members.models import Member

    url = with_database(server, BENCH_DB)
    recreate_database(server, BENCH_DB)
    rt = runtime_for(url)
    try:
        tenant_id = seed_brand(rt, url, members)
        started = time.perf_counter()
        body = TemplateIn(
            code=TEMPLATE,
            name="满198减20",
            kind="threshold",
            threshold_fen=THRESHOLD_FEN,
            amount_fen=DISCOUNT_FEN,
            valid_days=30,
        )
        fields = body.model_dump(exclude={"code", "store_codes", "region_codes", "agent_codes"})
        with rt.db.unit_of_work() as s:
            service.create_template(s, tenant_id=tenant_id, actor=ACTOR, code=TEMPLATE, **fields)
        with rt.db.reading() as s:
            member_ids = list(
                s.scalars(select(Member.id).where(Member.tenant_id == tenant_id).order_by(Member.id))
            )
        coupons: list[tuple[str, str]] = []
        for at in range(0, len(member_ids), ISSUE_BATCH):
            with rt.db.unit_of_work() as s:
                for member_id in member_ids[at : at + ISSUE_BATCH]:
                    coupon, created = service.issue_coupon(
                        s,
                        tenant_id=tenant_id,
                        template_code=TEMPLATE,
                        member_id=member_id,
                        issue_key=f"bench:{member_id}",
                        source="bench",
                    )
                    if not created:
                        raise SystemExit(f"member {member_id} had a coupon already")
                    coupons.append((member_id, coupon.code))
        say(f"  issued {len(coupons):,} coupons in {time.perf_counter() - started:.1f}s")
        with rt.db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
        return Seeded(tenant_id, new_api_key(rt, tenant_id, SCOPES), coupons)
    finally:
        rt.db.dispose()


# --- the drive ------------------------------------------------------------------------------------


@dataclass
class Tally:
    redeem: list[float] = field(default_factory=list)  # seconds per redeem answered 200 (measured)
    validate: list[float] = field(default_factory=list)
    refused_doubles: int = 0  # the second of a concurrent pair, answered 409 (measured)
    doubles: int = 0  # pairs sent (measured)
    redeemed_all: int = 0  # redeems answered 200, warm-up included: the database must hold as many
    errors: list[tuple[str, int, str]] = field(default_factory=list)
    last_end: float = 0.0

    def merge(self, other: Tally) -> None:
        self.redeem.extend(other.redeem)
        self.validate.extend(other.validate)
        self.refused_doubles += other.refused_doubles
        self.doubles += other.doubles
        self.redeemed_all += other.redeemed_all
        self.errors.extend(other.errors)
        self.last_end = max(self.last_end, other.last_end)


def timed(
    call: Call, path: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[int, Any, float, float]:
    started = time.perf_counter()
    status, answer = call("POST", path, body, headers)
    return status, answer, started, time.perf_counter()


class Partner:
    """The second till of a double redemption: its own thread and connection, started at the same
    moment as the first (a barrier) when handed a body."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.outbox: queue.Queue[tuple[int, Any, float, float] | BaseException] = queue.Queue()
        self.barrier = threading.Barrier(2)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (body := self.inbox.get()) is not None:
            try:
                self.barrier.wait(30)
                key = {"Idempotency-Key": secrets.token_hex(16)}
                self.outbox.put(timed(self.call, REDEEM, body, key))
            except BaseException as exc:  # handed back to the till, which reports it
                self.outbox.put(exc)

    def stop(self) -> None:
        self.inbox.put(None)
        self.thread.join(10)


@dataclass
class Till:
    number: int
    coupons: list[tuple[str, str]]  # this till's share
    run_id: str
    double_fraction: float
    rng: random.Random = field(init=False)
    next: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(f"{self.run_id}-{self.number}")

    def basket(self) -> list[dict[str, Any]]:
        """One to three articles, one or two of each, and another pair of shoes if under 198 yuan."""
        picked = [(sku, category, price) for _title, sku, category, price in CATALOGUE]
        lines = [
            {"sku": sku, "category": category, "quantity": self.rng.randint(1, 2), "unit_price_fen": price}
            for sku, category, price in self.rng.sample(picked, self.rng.randint(1, 3))
        ]
        if sum(line["quantity"] * line["unit_price_fen"] for line in lines) < THRESHOLD_FEN:
            lines.append({"sku": "SH-002", "category": "shoes", "quantity": 1, "unit_price_fen": 29900})
        return lines

    def sale(self, call: Call, partner: Partner, tally: Tally, *, measure_from: float) -> bool:
        """Validate and redeem the next coupon; False when the till has none left."""
        if self.next >= len(self.coupons):
            return False
        member_id, code = self.coupons[self.next]
        self.next += 1
        order_no = f"{self.run_id}-{self.number}-{self.next}"
        store = STORES[self.rng.randrange(len(STORES))]
        body = {
            "code": code,
            "channel": "pos",
            "store_code": store,
            "lines": self.basket(),
            "member_id": member_id,
            "order_no": order_no,
        }
        status, answer, started, ended = timed(call, VALIDATE, body, {})
        counted = started >= measure_from
        if status != 200 or not answer.get("applies") or answer.get("discount_fen") != DISCOUNT_FEN:
            tally.errors.append(("validate", status, str(answer)[:300]))
            return True
        if counted:
            tally.validate.append(ended - started)
        double = self.rng.random() < self.double_fraction
        if double:
            partner.inbox.put(body | {"order_no": f"{order_no}-2"})
            partner.barrier.wait(30)
        status, answer, started, ended = timed(call, REDEEM, body, {"Idempotency-Key": secrets.token_hex(16)})
        counted = started >= measure_from
        answers = [(status, answer, started, ended)]
        if double:
            other = partner.outbox.get(timeout=120)
            if isinstance(other, BaseException):
                raise other
            answers.append(other)
            tally.doubles += counted
        statuses = sorted(a[0] for a in answers)
        if double and statuses == [200, 409] and "redeemed" in str(answers[statuses.index(409)][1]):
            pass
        elif double and statuses == [200, 409]:
            ok = next(a for a in answers if a[0] == 409)
            tally.errors.append(("redeem twice", 409, f"refused, but not as redeemed: {str(ok[1])[:300]}"))
        elif double:
            text = " / ".join(str(a[1])[:150] for a in answers)
            tally.errors.append(("redeem twice", max(statuses), f"answers {statuses}: {text}"))
        elif status != 200:
            tally.errors.append(("redeem", status, str(answer)[:300]))
        for status, _answer, started, ended in answers:
            if status == 200:
                tally.redeemed_all += 1
                if started >= measure_from:
                    tally.redeem.append(ended - started)
                    tally.last_end = max(tally.last_end, ended)
            elif status == 409 and double and started >= measure_from:
                tally.refused_doubles += 1
        return True


def drive(
    make_call: Callable[[], Call],
    coupons: list[tuple[str, str]],
    *,
    clients: int,
    seconds: float,
    warmup: float,
    double_fraction: float,
) -> tuple[Tally, float]:
    """Every till sells until the deadline; the merged tally and the measured seconds."""
    run_id = f"C{int(time.time())}{secrets.token_hex(2)}"
    start = time.perf_counter()
    measure_from = start + warmup
    deadline = measure_from + seconds
    tallies = [Tally() for _ in range(clients)]
    failures: list[BaseException] = []

    def till_loop(number: int) -> None:
        partner = Partner(make_call())
        try:
            call = make_call()
            till = Till(number, coupons[number::clients], run_id, double_fraction)
            while time.perf_counter() < deadline:
                if not till.sale(call, partner, tallies[number], measure_from=measure_from):
                    raise RuntimeError(f"till {number} ran out of coupons: raise --members")
        except BaseException as exc:  # reported below: a dead till must not pass unnoticed
            failures.append(exc)
        finally:
            partner.stop()

    threads = [threading.Thread(target=till_loop, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    reported = measure_from
    while any(t.is_alive() for t in threads):
        time.sleep(0.05)
        now = time.perf_counter()
        if now - reported >= 10 and now < deadline:
            reported = now
            done = sum(len(t.redeem) for t in tallies)
            say(f"  {now - measure_from:5.1f}s: {done:,} redeemed, {done / (now - measure_from):.1f}/s")
    if failures:
        raise RuntimeError(f"{len(failures)} till(s) died: {failures[0]!r}") from failures[0]
    total = Tally()
    for tally in tallies:
        total.merge(tally)
    return total, max(total.last_end - measure_from, 1e-9)


# --- what the database says -----------------------------------------------------------------------


def database_counts(server: str, tenant_id: str) -> tuple[int, int, int]:
    """(coupons with more than one redemption not reversed, redemptions not reversed, coupons redeemed)."""
    import psycopg

    with psycopg.connect(**libpq(with_database(server, BENCH_DB))) as conn:
        doubles = conn.execute(
            "SELECT count(*) FROM (SELECT coupon_id FROM coupon_redemption"
            " WHERE tenant_id = %s AND reversed_at IS NULL GROUP BY coupon_id HAVING count(*) > 1) AS d",
            (tenant_id,),
        ).fetchone()
        redemptions = conn.execute(
            "SELECT count(*) FROM coupon_redemption WHERE tenant_id = %s AND reversed_at IS NULL",
            (tenant_id,),
        ).fetchone()
        redeemed = conn.execute(
            "SELECT count(*) FROM coupon WHERE tenant_id = %s AND status = 'redeemed'", (tenant_id,)
        ).fetchone()
    assert doubles and redemptions and redeemed
    return int(doubles[0]), int(redemptions[0]), int(redeemed[0])


# --- main -----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=10_000, help="members, one coupon each")
    parser.add_argument("--seconds", type=float, default=30, help="measured time")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of sales before measuring")
    parser.add_argument("--clients", type=int, default=8, help="concurrent tills")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--double-fraction", type=float, default=0.1, help="redeems sent twice at once")
    parser.add_argument("--server-url", default=None, help="default: scripts/postgres.sh's cluster")
    parser.add_argument("--record", action="store_true", help="append the figure to bench/RESULTS.md")
    args = parser.parse_args()
    if args.members < args.clients or args.clients < 1:
        parser.error("--members must be at least --clients, which is at least 1")

    server = server_url(args.server_url)
    seeded = seed(server, args.members)
    # The partner threads' connections idle between doubles: kept open, so no pair races a reconnect.
    api = ApiServer(with_database(server, BENCH_DB), port=free_port(), workers=args.workers, keep_alive=600)
    try:
        api.wait_ready()
        say(
            f"driving validate + redeem: {args.clients} tills, {args.warmup:.0f}s warm-up, "
            f"{args.seconds:.0f}s, {args.double_fraction:.0%} of redeems sent twice at once"
        )
        tally, measured = drive(
            lambda: http_caller(api.port, seeded.api_key),
            seeded.coupons,
            clients=args.clients,
            seconds=args.seconds,
            warmup=args.warmup,
            double_fraction=args.double_fraction,
        )
    finally:
        api.stop()
    server_log = api.output()
    api.log.close()
    if "Traceback" in server_log:
        say("the API server logged errors:\n" + server_log[-4000:])

    doubles, redemptions, redeemed = database_counts(server, seeded.tenant_id)
    if redemptions != tally.redeemed_all or redeemed != tally.redeemed_all:
        tally.errors.append(
            (
                "database",
                0,
                f"{tally.redeemed_all} redeems answered 200, but the database holds {redemptions} "
                f"redemptions not reversed and {redeemed} coupons redeemed",
            )
        )
    rps = len(tally.redeem) / measured
    say(
        f"API: {len(tally.redeem):,} redeemed in {measured:.1f}s from {args.clients} tills, "
        f"{tally.doubles:,} sent twice at once, {tally.refused_doubles:,} of the seconds refused (409)"
    )
    for name, values in (("validate", tally.validate), ("redeem", tally.redeem)):
        if values:
            say(
                f"  {name:<8} {len(values):>7,} calls {len(values) / measured:8.1f}/s  "
                f"p50 {ms(percentile(values, 0.5)):7.1f} ms  p99 {ms(percentile(values, 0.99)):7.1f} ms  "
                f"max {ms(max(values)):7.1f} ms"
            )
    say(f"database: {redemptions:,} redemptions not reversed, {redeemed:,} coupons redeemed")
    if tally.errors:
        say(f"ERRORS: {len(tally.errors)}")
        for (name, status), count in Counter((n, s) for n, s, _ in tally.errors).most_common():
            example = next(text for n, s, text in tally.errors if (n, s) == (name, status))
            say(f"  {count:>6} × {name} → {status}: {example}")
    figure = (
        f"redeem_rps={rps:.1f} p50_ms={ms(percentile(tally.redeem, 0.5)):.1f} "
        f"p99_ms={ms(percentile(tally.redeem, 0.99)):.1f} double_redemptions={doubles}"
    )
    if args.record and not tally.errors:
        argv = [a for a in sys.argv[1:] if a != "--record"]
        command = shlex.join(["python", "bench/coupon_redeem.py", *argv])
        note = (
            f"{args.members:,} members and coupons, {args.clients} clients, {args.workers} workers; "
            f"{len(tally.validate):,} validated, {len(tally.redeem):,} redeemed, "
            f"{tally.doubles:,} sent twice at once, refused_doubles {tally.refused_doubles:,}; "
            f"validate p50 {ms(percentile(tally.validate, 0.5)):.1f} ms; errors 0"
        )
        row = (
            f"| {date.today().isoformat()} | {describe_machine(server)} | `{command}` | `{figure}` ({note}) |"
        )
        record(SECTION, INTRO, row)
    elif args.record:
        say("not recorded: the run had errors")
    print(figure, flush=True)
    if tally.errors or doubles:
        sys.exit(1)


if __name__ == "__main__":
    main()
