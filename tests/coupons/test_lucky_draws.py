"""Lucky draws in the database, on SQLite and PostgreSQL: setting a draw up, every way in and every limit,
each kind of prize given exactly, goods collected once, refusals that change nothing, stock never
oversold under 16 concurrent entrants, and the audit: a real stored log replayed, a tampered one caught."""

from __future__ import annotations

import csv
import hashlib
import json
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text, update

from datong.cli import app
from datong.core.context import load_runtime
from datong.core.crypto import Keyring
from datong.core.db import Database
from datong.core.errors import Conflict, NotFound, ValidationFailed
from datong.coupons import draw_codes, draw_queries, draws, lucky_draws
from datong.coupons.codes import display_code, normalize_code
from datong.coupons.models import Coupon, CouponTemplate, Draw, DrawEntry, DrawPassCode, DrawPrize
from datong.coupons.service import create_template, issue_coupon
from datong.ledger.models import Transfer
from datong.ledger.service import LimitExceeded
from datong.members.models import Member
from datong.tenancy.models import AuditEntry
from tests.coupons.draw_helpers import (
    ACTOR,
    START_POINTS,
    T0,
    TEMPLATE,
    DrawWorld,
    draw_file,
    make_draw_world,
    only,
    snapshot,
)
from tests.test_cli import _ok, cli_env, runner

__all__ = ["cli_env"]  # the fixture, used by name

# A safety net so that a deadlock fails the test instead of hanging the run; nothing is measured.
THREAD_JOIN_LIMIT_S = 300


def _refused(w: DrawWorld, error: type[Exception], field: str, action: Any) -> str:
    """Runs ``action``, which must raise ``error`` naming ``field`` and change nothing; the message."""
    before = snapshot(w.db)
    with pytest.raises(error) as caught:
        action()
    assert getattr(caught.value, "field", None) == field, caught.value
    assert snapshot(w.db) == before, "a refused call changed something"
    return str(getattr(caught.value, "message", caught.value))


def _prize(changes: dict[str, Any]) -> dict[str, Any]:
    return draw_file(prizes=[draw_file()["prizes"][0] | changes, *draw_file()["prizes"][1:]])


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (draw_file(prizes=[]), "prizes"),
        (draw_file(colour="red"), "colour"),
        (_prize({"weight": 0}), "prizes.0.weight"),
        (_prize({"name": ""}), "prizes.0.name"),
        (_prize({"code": "none"}), "prizes.3.code"),
        (_prize({"points": 5}), "prizes.0.points"),
        (_prize({"kind": "coupon"}), "prizes.0.coupon_template"),
        (_prize({"kind": "coupon", "coupon_template": "NOPE"}), "prizes.0.coupon_template"),
        (_prize({"kind": "coupon", "coupon_template": "C10", "stock": 51}), "prizes.0.stock"),
        (_prize({"kind": "coupon", "coupon_template": "C10", "stock": None}), "prizes.0.stock"),
        (_prize({"kind": "points"}), "prizes.0.points"),
        (draw_file(prizes=draw_file()["prizes"][:3]), "prizes"),  # no prize of unlimited stock
        (draw_file(opens_at="2026-03-10T12:00:00+08:00", closes_at="2026-03-10T11:00:00+08:00"), "closes_at"),
        (draw_file(opens_at="2026-03-10T12:00:00"), "opens_at"),  # no time zone
        (draw_file(free_per_day=0, points_cost=None, pass_codes=False), "free_per_day"),
    ],
)
def test_a_bad_draw_names_its_field_and_keeps_nothing(
    database: Database, data: dict[str, Any], field: str
) -> None:
    w = make_draw_world(database, members=1)

    def create() -> None:
        with database.unit_of_work() as s:
            lucky_draws.create_draw(s, tenant_id=w.tenant_id, keyring=w.keyring, actor=ACTOR, data=data)

    _refused(w, ValidationFailed, field, create)


def test_a_draw_opens_takes_entries_and_closes_revealing_its_seed(database: Database) -> None:
    w = make_draw_world(database)
    with database.unit_of_work() as s:
        draft = lucky_draws.create_draw(
            s, tenant_id=w.tenant_id, keyring=w.keyring, actor=ACTOR, data=draw_file()
        )
    assert (draft.status, draft.revealed_seed, draft.entry_count) == ("draft", None, 0)
    seed = w.keyring.decrypt(
        draft.seed_enc, tenant_id=w.tenant_id, table="draw", row_id=draft.id, column="seed_enc"
    )
    assert hashlib.sha256(bytes.fromhex(seed)).hexdigest() == draft.commitment
    _refused(w, Conflict, "draw", lambda: w.enter(0))  # not open yet
    _refused(w, Conflict, "code", lambda: w.open(draw_file(name="another")))  # the code is taken
    with database.unit_of_work() as s:
        opened = lucky_draws.open_draw(s, tenant_id=w.tenant_id, code="spring", actor=ACTOR, at=T0)
    assert (opened.status, opened.opened_at, opened.commitment) == ("open", T0, draft.commitment)

    def again(step: str) -> Any:
        def act() -> None:
            with database.unit_of_work() as s:
                if step == "open":
                    lucky_draws.open_draw(s, tenant_id=w.tenant_id, code="spring", actor=ACTOR)
                else:
                    lucky_draws.close_draw(
                        s, tenant_id=w.tenant_id, keyring=w.keyring, code="spring", actor=ACTOR
                    )

        return act

    _refused(w, Conflict, "status", again("open"))
    first = w.enter(0)
    assert (first.entry.entry_no, first.entry.source, first.entry.day.isoformat()) == (
        1,
        "free",
        "2026-03-10",
    )
    with database.unit_of_work() as s:
        closed = lucky_draws.close_draw(
            s, tenant_id=w.tenant_id, keyring=w.keyring, code="spring", actor=ACTOR
        )
    assert closed.status == "closed" and closed.revealed_seed is not None
    assert hashlib.sha256(bytes.fromhex(closed.revealed_seed)).hexdigest() == draft.commitment
    _refused(w, Conflict, "draw", lambda: w.enter(1))
    _refused(w, Conflict, "status", again("close"))
    with database.reading() as s:
        actions = s.scalars(
            select(AuditEntry.action).where(AuditEntry.object_id == draft.id).order_by(AuditEntry.at)
        )
        assert list(actions) == ["draw.create", "draw.open", "draw.close"]


def test_entries_only_between_opens_at_and_closes_at(database: Database) -> None:
    w = make_draw_world(database, members=1)
    window = {
        "opens_at": (T0 + timedelta(hours=1)).isoformat(),
        "closes_at": (T0 + timedelta(hours=2)).isoformat(),
    }
    w.open(draw_file(**window))
    _refused(w, Conflict, "draw", lambda: w.enter(0, at=T0 + timedelta(minutes=59)))
    assert w.enter(0, at=T0 + timedelta(hours=1)).entry.entry_no == 1
    _refused(w, Conflict, "draw", lambda: w.enter(0, source="points", at=T0 + timedelta(hours=2)))


def test_free_entries_per_china_day_and_the_member_limits(database: Database) -> None:
    w = make_draw_world(database, members=2)
    w.open(draw_file(free_per_day=2, per_member_daily_limit=3, per_member_limit=4))
    late = T0 + timedelta(hours=11, minutes=59)  # 23:59 in China
    midnight = T0 + timedelta(hours=12)  # 00:00 the next day in China
    assert [w.enter(0).entry.entry_no, w.enter(0, at=late).entry.entry_no] == [1, 2]
    message = _refused(w, Conflict, "source", lambda: w.enter(0, at=late))
    assert message == "this member has had today's 2 free entries"
    assert w.enter(1).entry.entry_no == 3  # another member's free entries are their own
    assert w.enter(0, source="points", at=late).entry.entry_no == 4
    message = _refused(w, Conflict, "member_id", lambda: w.enter(0, source="points", at=late))
    assert message == "this member has had today's 3 entries"
    fourth = w.enter(0, at=midnight)
    assert (fourth.entry.entry_no, fourth.entry.day.isoformat()) == (5, "2026-03-11")
    message = _refused(w, Conflict, "member_id", lambda: w.enter(0, at=midnight))
    assert message == "this member has had the 4 entries a member may have"


def test_an_entry_by_points_spends_them_through_the_ledger(database: Database) -> None:
    w = make_draw_world(database, members=2)
    w.open(draw_file(prizes=only("none")))
    done = w.enter(0, source="points")
    assert (done.points_spent, w.balance(0)) == (100, START_POINTS - 100)
    with database.reading() as s:
        spend = s.scalars(
            select(Transfer).where(Transfer.operation_id == done.entry.detail["points_operation"])
        )
        assert [(t.code, t.amount, t.detail["channel"]) for t in spend] == [("redeem", 100, "lucky_draw")]
    w.enter(0, source="points")
    w.enter(0, source="points")
    _refused(w, LimitExceeded, "points", lambda: w.enter(0, source="points"))  # 0 left
    w.open(draw_file("sealed", points_cost=None, pass_codes=False, prizes=only("none")))
    _refused(w, ValidationFailed, "source", lambda: w.enter(1, "sealed", source="points"))
    _refused(
        w, ValidationFailed, "source", lambda: w.enter(1, "sealed", source="pass_code", pass_code="ABCDEF")
    )
    _refused(w, ValidationFailed, "source", lambda: w.enter(1, "sealed", source="lottery"))
    _refused(w, ValidationFailed, "pass_code", lambda: w.enter(1, "sealed", pass_code="ABCDEF"))
    _refused(w, NotFound, "draw", lambda: w.enter(1, "nope"))
    _refused(w, NotFound, "member_id", lambda: w.enter("mem_00000000000000000000000000", "sealed"))


def test_pass_codes_are_kept_as_hashes_and_enter_once_each(database: Database) -> None:
    w = make_draw_world(database, members=2)
    w.open(draw_file())
    w.open(draw_file("other"))
    with database.unit_of_work() as s:
        codes = draw_codes.generate_pass_codes(
            s, tenant_id=w.tenant_id, keyring=w.keyring, code="spring", count=20, batch="run-1", actor=ACTOR
        )
        other = draw_codes.generate_pass_codes(
            s, tenant_id=w.tenant_id, keyring=w.keyring, code="other", count=1, batch="run-1", actor=ACTOR
        )
    assert len(set(codes)) == 20 and all(normalize_code(c) == c for c in codes)
    with database.reading() as s:
        stored = list(s.scalars(select(DrawPassCode).where(DrawPassCode.batch == "run-1")))
        dump = str([(p.code_hash, p.note, p.batch) for p in stored])
    assert len(stored) == 21 and not any(c in dump or c.lower() in dump for c in codes)
    typed = display_code(codes[0]).lower()  # as a person types it from the pack
    first = w.enter(0, source="pass_code", pass_code=typed)
    with database.reading() as s:
        used = s.scalar(select(DrawPassCode).where(DrawPassCode.entry_id == first.entry.id))
        assert used is not None and (used.used_at, used.draw_id) == (T0, first.entry.draw_id)
    message = _refused(w, Conflict, "pass_code", lambda: w.enter(1, source="pass_code", pass_code=codes[0]))
    assert message == "this pass code was used already"
    for unknown in ("ZZZZZZZZZZZZZ", other[0]):  # a code no draw has, another draw's code
        _refused(
            w, NotFound, "pass_code", lambda code=unknown: w.enter(1, source="pass_code", pass_code=code)
        )
    _refused(w, ValidationFailed, "pass_code", lambda: w.enter(1, source="pass_code", pass_code="abc"))
    assert w.enter(1, source="pass_code", pass_code=codes[1]).entry.entry_no == 2


def test_a_list_of_the_brands_own_codes_loads_whole_or_not_at_all(database: Database) -> None:
    w = make_draw_world(database, members=1)
    w.open(draw_file())

    def load(codes: list[str]) -> int:
        with database.unit_of_work() as s:
            return draw_codes.load_pass_codes(
                s,
                tenant_id=w.tenant_id,
                keyring=w.keyring,
                code="spring",
                codes=codes,
                batch="box",
                actor=ACTOR,
            )

    assert load(["PACK-0001-AA", "pack0002aa"]) == 2
    before = snapshot(database)
    with pytest.raises(ValidationFailed) as caught:
        load(["PACK0003AA", "abc", "pack 0003 aa", "PACK0001AA", "包装码123456"])
    assert (caught.value.field, caught.value.message) == (
        "codes",
        "4 codes cannot be loaded; row 2: a pass code has 6 to 40 letters and digits",
    )
    assert caught.value.detail["rows"] == [
        {"row": 2, "reason": "a pass code has 6 to 40 letters and digits"},
        {"row": 3, "reason": "the same code as row 1"},
        {"row": 4, "reason": "this code was loaded before"},
        {"row": 5, "reason": "a pass code has 6 to 40 letters and digits"},
    ]
    assert snapshot(database) == before
    assert w.enter(0, source="pass_code", pass_code="PACKOOO2AA").entry.source == "pass_code"  # O read as 0


def test_each_kind_of_prize_is_given_exactly(database: Database) -> None:
    w = make_draw_world(database, members=1)
    with database.unit_of_work() as s:  # a template with no budget: a prize of unlimited stock
        create_template(
            s, tenant_id=w.tenant_id, actor=ACTOR, **(TEMPLATE | {"code": "C0", "total_quantity": None})
        )
    for kind, extra in (
        ("coupon", {"coupon_template": "C0"}),
        ("points", {"points": 88}),
        ("goods", {}),
        ("none", {}),
    ):
        w.open(draw_file(kind, prizes=only(kind, **extra)))
    before = snapshot(database)
    coupon = w.enter(0, "coupon")
    assert coupon.coupon is not None and coupon.prize.code == "coupon"
    assert (coupon.coupon.source, coupon.coupon.issue_key, coupon.coupon.member_id, coupon.coupon.status) == (
        "prize",
        f"draw:{coupon.entry.draw_id}:1",
        w.member(0),
        "issued",
    )
    assert (coupon.entry.coupon_id, coupon.entry.pickup_code, coupon.prize.remaining) == (
        coupon.coupon.id,
        None,
        None,
    )
    points = w.enter(0, "points")
    assert (points.coupon, points.entry.pickup_code, w.balance(0)) == (None, None, START_POINTS + 88)
    with database.reading() as s:
        credit = s.get(Transfer, points.entry.detail["points_transfer"])
        assert credit is not None and (credit.code, credit.amount) == ("adjust", 88)
        assert credit.reason == "lucky draw points #1: only points"
    goods = w.enter(0, "goods")
    assert (
        goods.entry.pickup_code is not None
        and normalize_code(goods.entry.pickup_code) == goods.entry.pickup_code
    )
    nothing = w.enter(0, "none")
    assert (nothing.prize.kind, nothing.coupon, nothing.entry.pickup_code) == ("none", None, None)
    after = snapshot(database)
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert changed == {
        "draw_entry": (0, 4),
        "entries": (0, 4),
        "coupon": (0, 1),
        "coupons_issued": (0, 1),
        "audit_entry": (before["audit_entry"], before["audit_entry"] + 1),  # the points adjustment
        "ledger_transfer": (before["ledger_transfer"], before["ledger_transfer"] + 1),
        "loyalty_points_lot": (before["loyalty_points_lot"], before["loyalty_points_lot"] + 1),
        "points_left": (before["points_left"], before["points_left"] + 88),
        "credits": (before["credits"], before["credits"] + 88),
        "ledger_account": (before["ledger_account"], before["ledger_account"] + 1),  # HQ's adjustments
    }


def test_goods_are_collected_once_at_a_store(database: Database) -> None:
    w = make_draw_world(database, members=1)
    w.open(draw_file(prizes=only("goods")))
    won = w.enter(0)
    assert won.entry.pickup_code is not None
    store_id = w.points.stores["F1"]

    def collect(code: str, store: str = store_id) -> DrawEntry:
        with database.unit_of_work() as s:
            found = draw_codes.find_pickup(s, tenant_id=w.tenant_id, pickup_code=code)
            return draw_codes.collect_prize(
                s,
                tenant_id=w.tenant_id,
                entry_id=found.id,
                store_id=store,
                actor=ACTOR,
                at=T0 + timedelta(days=2),
            )

    _refused(w, ValidationFailed, "pickup_code", lambda: collect("not-a-code"))
    _refused(w, NotFound, "pickup_code", lambda: collect("0000-0000-0000-0"))
    _refused(w, NotFound, "store_id", lambda: collect(won.entry.pickup_code or "", "sto_unknown"))
    done = collect(display_code(won.entry.pickup_code).lower())
    assert (done.collected_at, done.collected_store_id) == (T0 + timedelta(days=2), store_id)
    message = _refused(w, Conflict, "pickup_code", lambda: collect(won.entry.pickup_code or ""))
    assert message == f"these goods were collected already, at {(T0 + timedelta(days=2)).isoformat()}"
    w.open(draw_file("plain", prizes=only("none")))
    plain = w.enter(0, "plain")

    def collect_plain() -> None:
        with database.unit_of_work() as s:
            draw_codes.collect_prize(
                s, tenant_id=w.tenant_id, entry_id=plain.entry.id, store_id=store_id, actor=ACTOR
            )

    _refused(w, ValidationFailed, "pickup_code", collect_plain)


def test_a_coupon_prize_that_cannot_be_issued_refuses_the_entry_and_changes_nothing(
    database: Database,
) -> None:
    w = make_draw_world(database, members=2)
    with database.unit_of_work() as s:
        s.execute(update(CouponTemplate).values(total_quantity=2))
    w.open(draw_file(free_per_day=100, prizes=only("coupon", coupon_template="C10", stock=2) + only("none")))
    with database.unit_of_work() as s:  # a draft whose coupons will be gone when it opens
        lucky_draws.create_draw(
            s,
            tenant_id=w.tenant_id,
            keyring=w.keyring,
            actor=ACTOR,
            data=draw_file("later", prizes=only("coupon", coupon_template="C10", stock=1) + only("none")),
        )
    with database.unit_of_work() as s:  # the template's budget goes elsewhere
        for n in (1, 2):
            issue_coupon(
                s,
                tenant_id=w.tenant_id,
                template_code="C10",
                member_id=w.member(1),
                issue_key=f"x{n}",
                source="api",
                at=T0,
            )
    with database.reading() as s:
        draw = s.scalar(select(Draw).where(Draw.code == "spring"))
        assert draw is not None
        seed = w.keyring.decrypt(
            draw.seed_enc, tenant_id=w.tenant_id, table="draw", row_id=draw.id, column="seed_enc"
        )
    prizes = [draws.Prize("coupon", 1, 2), draws.Prize("none", 1, None)]
    winning = next(
        n
        for n in range(1, 50)
        if draws.outcome(bytes.fromhex(seed), draw.id, n, prizes, {"coupon": 2}) == "coupon"
    )
    for _ in range(winning - 1):
        assert w.enter(0).prize.code == "none"
    message = _refused(w, Conflict, "prize", lambda: w.enter(0))
    assert (
        message == "the prize cannot be given now, so the entry was not taken: the budget of 'C10' is spent"
    )
    _refused(w, Conflict, "prize", lambda: w.enter(1))  # the entry number wins the same prize for anyone

    def open_later() -> None:
        with database.unit_of_work() as s:
            lucky_draws.open_draw(s, tenant_id=w.tenant_id, code="later", actor=ACTOR)

    message = _refused(w, ValidationFailed, "prizes.0.stock", open_later)
    assert message == "the template's budget has 0 coupons left: the prize's stock must be at most that"


def test_stock_is_never_oversold_and_the_stored_log_replays_and_a_tampered_one_is_caught(
    database: Database,
) -> None:
    w = make_draw_world(database, members=3)
    w.open(draw_file(free_per_day=100))
    for round_no in range(40):
        for member in range(3):
            w.enter(member, at=T0 + timedelta(seconds=round_no))
    with database.reading() as s:
        verdict = draw_queries.verify_draw(s, tenant_id=w.tenant_id, code="spring", keyring=w.keyring)
        audit = draw_queries.audit_draw(s, tenant_id=w.tenant_id, code="spring")
        stock = dict(s.execute(select(DrawPrize.code, DrawPrize.remaining)).all())
    assert (verdict.fair, verdict.entries, audit.seed) == (True, 120, None)
    won = Counter(code for _, code in audit.log)
    assert stock == {"bag": 3 - won["bag"], "c10": 10 - won["c10"], "p50": 10 - won["p50"], "none": None}
    for code, initial in {"bag": 3, "c10": 10, "p50": 10}.items():
        remaining = stock[code]
        assert remaining is not None and remaining >= 0 and won[code] <= initial, (code, remaining, won)
    with database.unit_of_work() as s:
        lucky_draws.close_draw(s, tenant_id=w.tenant_id, keyring=w.keyring, code="spring", actor=ACTOR)
    with database.reading() as s:
        published = draw_queries.audit_draw(s, tenant_id=w.tenant_id, code="spring").as_dict()
        coupons = s.scalar(select(func.count()).select_from(Coupon).where(Coupon.source == "prize"))
    # The auditor's side: only the published answer, and the reference simulation from the seed.
    assert draws.replay_published(published) == []
    seed = bytes.fromhex(published["seed"])
    assert [code for _, code in published["log"]] == draws.run(seed, published["draw_id"], audit.prizes, 120)
    assert coupons == won["c10"]
    position = next(n for n, code in audit.log if code == "none")
    with database.unit_of_work() as s:  # someone edits one outcome in the database
        s.execute(update(DrawEntry).where(DrawEntry.entry_no == position).values(prize_code="bag"))
    with database.reading() as s:
        verdict = draw_queries.verify_draw(s, tenant_id=w.tenant_id, code="spring", keyring=w.keyring)
    assert verdict.mismatches == [draws.Mismatch(position, "bag", "none")]
    assert verdict.problems == [f"prize 'bag': {3 - won['bag']} left, but 3 less {won['bag'] + 1} won"]
    with database.unit_of_work() as s:  # put back, then an entry is removed from the log
        s.execute(update(DrawEntry).where(DrawEntry.entry_no == position).values(prize_code="none"))
        s.execute(text("UPDATE draw_pass_code SET entry_id = NULL"))
        s.execute(update(DrawEntry).where(DrawEntry.entry_no == 120).values(entry_no=121))
    with database.reading() as s:
        verdict = draw_queries.verify_draw(s, tenant_id=w.tenant_id, code="spring", keyring=w.keyring)
    assert (verdict.mismatches, verdict.problems) == (
        [],
        ["the log's entries are not numbered 1, 2, 3 … in order"],
    )
    forged = published | {"seed": bytes(32).hex()}
    with pytest.raises(ValueError, match="does not match the commitment"):
        draws.replay_published(forged)


def test_16_entrants_at_once_never_exceed_the_stock_and_number_every_entry(database: Database) -> None:
    """16 threads, each a member entering 4 times, all released together. The prizes in stock (3 coupons,
    2 points prizes, 3 goods) carry nearly all the weight, so their stock runs out during the race (that it
    would not, in 64 entries, has a chance below 1e-8 per run)."""
    threads, rounds = 16, 4
    w = make_draw_world(database, members=threads)
    prizes = [
        {"code": "c10", "name": "券", "kind": "coupon", "weight": 30, "stock": 3, "coupon_template": "C10"},
        {"code": "p50", "name": "积分", "kind": "points", "weight": 30, "stock": 2, "points": 50},
        {"code": "bag", "name": "袋", "kind": "goods", "weight": 30, "stock": 3},
        {"code": "none", "name": "谢谢", "kind": "none", "weight": 1},
    ]
    w.open(draw_file(free_per_day=rounds, prizes=prizes))
    barrier = threading.Barrier(threads)
    outcomes: list[list[str]] = [[] for _ in range(threads)]

    def run(index: int) -> None:
        barrier.wait()
        for _ in range(rounds):
            try:
                outcomes[index].append(w.enter(index).prize.code)
            except Exception as exc:
                outcomes[index].append(f"error: {exc!r}")

    workers = [threading.Thread(target=run, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(THREAD_JOIN_LIMIT_S)
    assert [worker.is_alive() for worker in workers] == [False] * threads
    won = Counter(code for per_thread in outcomes for code in per_thread)
    assert won == Counter({"c10": 3, "p50": 2, "bag": 3, "none": threads * rounds - 8})
    with database.reading() as s:
        numbers = sorted(s.scalars(select(DrawEntry.entry_no)))
        stock = dict(s.execute(select(DrawPrize.code, DrawPrize.remaining)).all())
        coupons = list(s.scalars(select(Coupon.issue_key).where(Coupon.source == "prize")))
        issued = s.scalar(select(CouponTemplate.issued_count).where(CouponTemplate.code == "C10"))
        credits = s.scalar(
            select(func.count()).select_from(Transfer).where(Transfer.reason.like("lucky draw %"))
        )
        pickups = s.scalar(select(func.count(func.distinct(DrawEntry.pickup_code))))
        verdict = draw_queries.verify_draw(s, tenant_id=w.tenant_id, code="spring", keyring=w.keyring)
        entry_count = s.scalar(select(Draw.entry_count))
    assert numbers == list(range(1, threads * rounds + 1)) and entry_count == threads * rounds
    assert stock == {"c10": 0, "p50": 0, "bag": 0, "none": None}
    assert (len(coupons), len(set(coupons)), issued, credits, pickups) == (3, 3, 3, 2, 3)
    assert verdict.fair, verdict


def test_a_draw_from_the_command_line_and_its_audit_checked_offline(
    cli_env: Database, tmp_path: Path
) -> None:
    _ok(["tenant", "create", "acme", "Acme 服饰"])
    draw_json = tmp_path / "draw.json"
    prizes = [{"code": "bag", "name": "帆布袋", "kind": "goods", "weight": 1, "stock": 2}, *only("none")]
    draw_json.write_text(
        json.dumps(draw_file("cny", prizes=prizes, points_cost=None), ensure_ascii=False), "utf-8"
    )
    created = _ok(["draws", "create", "--file", str(draw_json)])
    with cli_env.reading() as s:
        draw = s.scalar(select(Draw).where(Draw.code == "cny"))
        assert draw is not None and draw.status == "draft"
        member = Member(tenant_id=draw.tenant_id, name="王芳")
    assert f"commitment (sha256 of the seed): {draw.commitment}" in created
    assert "is open" in _ok(["draws", "open", "cny"])
    codes_csv = tmp_path / "codes.csv"
    _ok(["draws", "pass-codes", "cny", "--batch", "run-1", "--count", "3", "--out", str(codes_csv)])
    with codes_csv.open(encoding="utf-8") as fh:
        printed = list(csv.DictReader(fh))
    assert [row["printed"] for row in printed] == [display_code(row["code"]) for row in printed] and len(
        printed
    ) == 3
    refused = runner.invoke(
        app, ["draws", "pass-codes", "cny", "--batch", "run-2", "--count", "1", "--out", str(codes_csv)]
    )
    assert getattr(refused.exception, "field", None) == "out"
    (tmp_path / "own.txt").write_text("BOX-000001\nBOX-000002\n", "utf-8")
    assert "2 pass codes loaded" in _ok(
        ["draws", "pass-codes", "cny", "--batch", "box", "--load", str(tmp_path / "own.txt")]
    )
    runtime = load_runtime()
    with cli_env.unit_of_work() as s:
        s.add(member)
    for source, code in (("free", None), ("pass_code", printed[0]["printed"]), ("pass_code", "box-000002")):
        with cli_env.unit_of_work() as s:
            lucky_draws.enter_draw(
                s,
                tenant_id=draw.tenant_id,
                keyring=runtime.keyring,
                code="cny",
                member_id=member.id,
                source=source,
                pass_code=code,
                actor=ACTOR,
            )
    log_csv, audit_json = tmp_path / "log.csv", tmp_path / "audit.json"
    audited = _ok(["draws", "audit", "cny", "--out", str(log_csv), "--json", str(audit_json)])
    assert "seed: revealed when the draw closes" in audited
    with log_csv.open(encoding="utf-8") as fh:
        assert [row["entry_no"] for row in csv.DictReader(fh)] == ["1", "2", "3"]
    assert "all 3 entries recomputed: every outcome matches" in _ok(["draws", "verify", "cny"])
    assert f"seed {_seed_of_cny(cli_env, runtime.keyring)}" in _ok(["draws", "close", "cny"])
    closed_json = tmp_path / "closed.json"
    _ok(["draws", "audit", "cny", "--json", str(closed_json)])
    assert "all 3 entries recomputed" in _ok(["draws", "verify", "--json", str(closed_json)])
    published = json.loads(closed_json.read_text("utf-8"))
    wrong = "none" if published["log"][1][1] == "bag" else "bag"
    published["log"][1][1] = wrong
    closed_json.write_text(json.dumps(published), "utf-8")
    tampered = runner.invoke(app, ["draws", "verify", "--json", str(closed_json)])
    assert tampered.exit_code == 1
    assert f"entry 2: recorded {wrong}, the seed gives" in tampered.output


def _seed_of_cny(db: Database, keyring: Keyring) -> str:
    with db.reading() as s:
        draw = s.scalar(select(Draw).where(Draw.code == "cny"))
        assert draw is not None
        return keyring.decrypt(
            draw.seed_enc, tenant_id=draw.tenant_id, table="draw", row_id=draw.id, column="seed_enc"
        )
