"""Issuing within budgets, validating, redeeming exactly once, and reversing: on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from datong.core.crypto import Keyring
from datong.core.db import Database
from datong.core.errors import Conflict, NotFound, ValidationFailed
from datong.coupons import service
from datong.coupons.codes import dynamic_payload, dynamic_signer, new_code
from datong.coupons.models import Coupon, CouponRedemption, CouponTemplate
from datong.coupons.rules import Basket, Line
from datong.members.models import Member
from datong.tenancy.service import create_tenant

NOW = datetime(2026, 11, 23, 6, tzinfo=UTC)
ACTOR = "system:test"
TEE = Line("TE-1", "tops", 2, 9900)


def _brand(db: Database, members: int = 2, **template: Any) -> tuple[str, list[str]]:
    with db.unit_of_work() as s:
        tenant_id = create_tenant(s, code="beauty", name="美妆").id
        ids = []
        for index in range(members):
            member = Member(tenant_id=tenant_id, name=f"会员{index}")
            s.add(member)
            s.flush()
            ids.append(member.id)
        fields: dict[str, Any] = {
            "name": "满198减20",
            "kind": "threshold",
            "threshold_fen": 19800,
            "amount_fen": 2000,
        }
        service.create_template(
            s, tenant_id=tenant_id, actor=ACTOR, code="T20", valid_days=30, **(fields | template)
        )
    return tenant_id, ids


def _issue(db: Database, tenant_id: str, member_id: str, key: str, at: datetime = NOW) -> Coupon:
    with db.unit_of_work() as s:
        coupon, _created = service.issue_coupon(
            s,
            tenant_id=tenant_id,
            template_code="T20",
            member_id=member_id,
            issue_key=key,
            source="api",
            at=at,
        )
        return coupon


def _basket(at: datetime = NOW, *lines: Line) -> Basket:
    return Basket(channel="pos", store_id=None, at=at, lines=lines or (TEE,))


def _count(db: Database, model: Any) -> int:
    with db.reading() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": "lottery"}, "kind"),
        ({"kind": "threshold", "threshold_fen": 1000, "amount_fen": 2000}, "threshold_fen"),
        ({"kind": "discount", "rate_pct": 100}, "rate_pct"),
        ({"kind": "exchange", "sku": None}, "sku"),
        ({"valid_days": None}, "valid_until"),
        ({"colour": "red"}, "colour"),
        ({"per_member_limit": 0}, "per_member_limit"),
        ({"per_day_limit": 0}, "per_day_limit"),
        ({"region_ids": ["reg_nope"]}, "region_ids.0"),
        ({"agent_ids": [], "store_ids": ["sto_nope"]}, "store_ids.0"),
        (
            {"valid_days": None, "valid_from": NOW, "valid_until": NOW - timedelta(days=1)},
            "valid_until",
        ),
    ],
)
def test_a_bad_template_names_its_field_and_is_not_kept(
    database: Database, fields: dict[str, Any], field: str
) -> None:
    tenant_id, _ = _brand(database)
    with database.unit_of_work() as s, pytest.raises(ValidationFailed) as err:
        base: dict[str, Any] = {"name": "x", "kind": "cash_off", "amount_fen": 100, "valid_days": 7}
        service.create_template(s, tenant_id=tenant_id, actor=ACTOR, code="BAD", **(base | fields))
    assert err.value.field == field
    assert _count(database, CouponTemplate) == 1


def test_issuing_is_idempotent_and_holds_the_budget_and_the_member_limit(database: Database) -> None:
    tenant_id, (a, b) = _brand(database, total_quantity=2, per_member_limit=1)
    first = _issue(database, tenant_id, a, "k1")
    assert _issue(database, tenant_id, a, "k1").id == first.id
    assert (first.valid_from, first.valid_until) == (NOW, NOW + timedelta(days=30))
    with pytest.raises(Conflict) as err:
        _issue(database, tenant_id, a, "k2")
    assert err.value.field == "member_id"
    _issue(database, tenant_id, b, "k3")
    with pytest.raises(Conflict) as err:
        _issue(database, tenant_id, b, "k4")
    assert (err.value.field, err.value.message) == ("template", "the budget of 'T20' is spent")
    with database.reading() as s:
        assert s.scalar(select(CouponTemplate.issued_count)) == 2
    assert _count(database, Coupon) == 2


def test_validate_redeem_once_and_reverse(database: Database) -> None:
    tenant_id, (a, b) = _brand(database)
    coupon = _issue(database, tenant_id, a, "k1")
    with database.reading() as s:
        found = service.find_coupon(s, tenant_id=tenant_id, code=coupon.code.lower())
        small = service.validate_coupon(
            s, coupon=found, basket=_basket(NOW, Line("SO", None, 1, 500)), member_id=b
        )
    assert [r.code for r in small.reasons] == ["member", "threshold"]
    with database.unit_of_work() as s:
        done = service.redeem_coupon(
            s,
            coupon=service.find_coupon(s, tenant_id=tenant_id, code=coupon.code),
            basket=_basket(),
            order_no="P1",
            actor=ACTOR,
        )
        redemption_id = done.redemption.id
    assert done.decision.discount_fen == 2000
    with database.unit_of_work() as s, pytest.raises(Conflict) as err:
        service.redeem_coupon(
            s,
            coupon=service.find_coupon(s, tenant_id=tenant_id, code=coupon.code),
            basket=_basket(),
            order_no="P2",
            actor=ACTOR,
        )
    assert err.value.detail["reasons"] == ["redeemed"]
    assert _count(database, CouponRedemption) == 1
    with database.unit_of_work() as s:
        assert (
            service.reverse_redemption(
                s, tenant_id=tenant_id, redemption_id=redemption_id, actor=ACTOR, at=NOW
            ).status
            == "issued"
        )
    with database.unit_of_work() as s, pytest.raises(Conflict):
        service.reverse_redemption(s, tenant_id=tenant_id, redemption_id=redemption_id, actor=ACTOR, at=NOW)
    with database.unit_of_work() as s:  # redeemed again, then refunded after it expired: void
        again = service.redeem_coupon(
            s,
            coupon=service.find_coupon(s, tenant_id=tenant_id, code=coupon.code),
            basket=_basket(),
            order_no="P3",
            actor=ACTOR,
        )
    with database.unit_of_work() as s:
        late = NOW + timedelta(days=31)
        assert (
            service.reverse_redemption(
                s, tenant_id=tenant_id, redemption_id=again.redemption.id, actor=ACTOR, at=late
            ).status
            == "void"
        )


def test_a_mistyped_code_is_refused_and_an_unknown_one_is_not_found(database: Database) -> None:
    tenant_id, (a, _b) = _brand(database)
    coupon = _issue(database, tenant_id, a, "k1")
    wrong_first = ("Y" if coupon.code[0] == "X" else "X") + coupon.code[1:]  # one character mistyped
    with database.reading() as s, pytest.raises(ValidationFailed) as err:
        service.find_coupon(s, tenant_id=tenant_id, code=wrong_first)
    assert (err.value.field, err.value.message) == (
        "code",
        "this is not a valid coupon code: a character is wrong or two are swapped",
    )
    other_brand_code = new_code()  # well formed, but no coupon of this brand
    with database.reading() as s, pytest.raises(NotFound):
        service.find_coupon(s, tenant_id=tenant_id, code=other_brand_code)


def _race(threads: int, action: Any) -> list[str]:
    barrier = threading.Barrier(threads)
    outcomes: list[str] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        try:
            action()
            outcome = "ok"
        except Conflict as exc:
            outcome = exc.message
        with lock:
            outcomes.append(outcome)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return outcomes


def test_32_tills_redeeming_one_code_50_times_succeed_once_a_round(database: Database) -> None:
    tenant_id, (a, _b) = _brand(database)
    for round_no in range(50):
        coupon = _issue(database, tenant_id, a, f"round-{round_no}")

        def redeem(code: str = coupon.code, round_no: int = round_no) -> None:
            with database.unit_of_work() as s:
                found = service.find_coupon(s, tenant_id=tenant_id, code=code)
                service.redeem_coupon(s, coupon=found, basket=_basket(), order_no=f"P{round_no}", actor=ACTOR)

        outcomes = _race(32, redeem)
        # The losers either saw the coupon redeemed already, or lost the UPDATE that redeems it.
        assert set(outcomes) <= {
            "ok",
            "the coupon does not apply: this coupon is redeemed",
            "this coupon was redeemed already",
        }
        assert outcomes.count("ok") == 1, round_no
    assert _count(database, CouponRedemption) == 50


def test_concurrent_issuing_never_exceeds_the_budget(database: Database) -> None:
    tenant_id, members = _brand(database, members=16, total_quantity=5)

    def issuer(member_id: str) -> Any:
        return lambda: _issue(database, tenant_id, member_id, f"k-{member_id}")

    actions = iter([issuer(m) for m in members])
    lock = threading.Lock()

    def next_action() -> None:
        with lock:
            action = next(actions)
        action()

    outcomes = _race(16, next_action)
    assert outcomes.count("ok") == 5
    assert sorted(set(outcomes)) == ["ok", "the budget of 'T20' is spent"]
    assert _count(database, Coupon) == 5


def test_one_issue_key_sent_by_16_callers_at_once_gives_one_coupon(database: Database) -> None:
    tenant_id, (a, _b) = _brand(database)
    coupons: list[str] = []
    lock = threading.Lock()

    def issue() -> None:
        coupon = _issue(database, tenant_id, a, "same-key")
        with lock:
            coupons.append(coupon.id)

    assert _race(16, issue) == ["ok"] * 16
    assert len(set(coupons)) == 1
    assert _count(database, Coupon) == 1
    with database.reading() as s:
        assert s.scalar(select(CouponTemplate.issued_count)) == 1


def test_exclusive_coupons_redeemed_on_one_order_at_once_never_stack(database: Database) -> None:
    """The router's sequence: hold the order, read the coupons already on it, redeem. Eight tills each
    put an exclusive coupon on one order at the same moment: one gets on, the others are refused."""
    from datong.coupons.queries import coupons_on_order

    tenant_id, (a, _b) = _brand(database, exclusive=True)
    codes = [_issue(database, tenant_id, a, f"k{i}").code for i in range(8)]
    pending = iter(codes)
    lock = threading.Lock()

    def redeem() -> None:
        with lock:
            code = next(pending)
        with database.unit_of_work() as s:
            service.hold_order(s, tenant_id=tenant_id, channel="pos", order_no="P1")
            others = coupons_on_order(s, tenant_id=tenant_id, channel="pos", order_no="P1")
            basket = Basket(channel="pos", store_id=None, at=NOW, lines=(TEE,), others=others)
            coupon = service.find_coupon(s, tenant_id=tenant_id, code=code)
            service.redeem_coupon(s, coupon=coupon, basket=basket, order_no="P1", actor=ACTOR)

    outcomes = _race(8, redeem)
    assert outcomes.count("ok") == 1
    refused = (
        "the coupon does not apply: the only coupon allowed on an order; "
        "the order already carries a coupon that allows no other"
    )
    assert set(outcomes) == {"ok", refused}
    assert _count(database, CouponRedemption) == 1


def test_a_dynamic_code_is_read_while_fresh_and_refused_when_forged_or_old(
    database: Database, keyring: Keyring
) -> None:
    tenant_id, (a, _b) = _brand(database)
    coupon = _issue(database, tenant_id, a, "k1")
    sign = dynamic_signer(keyring, tenant_id)
    payload = dynamic_payload(coupon.id, at_epoch=NOW.timestamp(), sign=sign)  # made in NOW's minute
    assert coupon.code not in payload  # the coupon's id: a screenshot does not give away its code
    with database.reading() as s:
        # Good for the minute it was made in and the next (a clock a little behind), not after.
        for late in (0, 59, 119):
            at = NOW + timedelta(seconds=late)
            assert service.find_coupon(s, tenant_id=tenant_id, code=payload, sign=sign, at=at).id == coupon.id
    coupon_id, window, mac = payload.split(".")
    other_brand = dynamic_signer(keyring, "ten_other")
    refused = [
        (payload, sign, 120, "this dynamic code has expired: refresh the member page"),
        (f"{coupon_id}.{window}.{'0' * len(mac)}", sign, 0, "not a coupon's dynamic code"),
        (f"{coupon_id}.{int(window) + 1}.{mac}", sign, 60, "not a coupon's dynamic code"),  # window moved on
        (f"{coupon.code}.{window}.{mac}", sign, 0, "not a coupon's dynamic code"),  # the code for the id
        (f"{coupon_id}.{window}.{'é' * len(mac)}", sign, 0, "not a coupon's dynamic code"),  # not ASCII
        (
            dynamic_payload(coupon.id, at_epoch=NOW.timestamp(), sign=other_brand),
            sign,
            0,
            "not a coupon's dynamic code",
        ),
        (payload, None, 0, "a dynamic code is not accepted here: type the coupon's printed code"),
    ]
    for text, signer, late, message in refused:
        with database.reading() as s, pytest.raises(ValidationFailed) as err:
            service.find_coupon(
                s, tenant_id=tenant_id, code=text, sign=signer, at=NOW + timedelta(seconds=late)
            )
        assert (err.value.field, err.value.message) == ("code", message)
