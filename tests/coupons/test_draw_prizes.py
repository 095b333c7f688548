"""A coupon prize is checked, when its draw is made and again when it opens, against everything that would
stop its template issuing before the draw closes: the share of the budget the stores' allocations hold
back (a prize issues through no store), the other prizes of the draw giving the same template, and the
end of the template's validity. Each would otherwise refuse every entry that wins the prize, for good.
On SQLite and PostgreSQL.

The world is ``draw_helpers``: template C10 (a budget of 50, valid 30 days from issue), the draw file's
prize ``c10`` at ``prizes.1`` with a stock of 10.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from datong.core.db import Database
from datong.core.errors import ValidationFailed
from datong.coupons import lucky_draws
from datong.coupons.models import CouponTemplate
from datong.coupons.service import create_template, issue_coupon, set_allocation
from tests.coupons.draw_helpers import ACTOR, T0, TEMPLATE, DrawWorld, draw_file, make_draw_world, snapshot

ENDS_AT = T0 + timedelta(days=5)


def _refused(w: DrawWorld, field: str, action: Callable[[], Any]) -> str:
    """``action`` raises ValidationFailed naming ``field`` and changes nothing; its message."""
    before = snapshot(w.db)
    with pytest.raises(ValidationFailed) as caught:
        action()
    assert caught.value.field == field, caught.value
    assert snapshot(w.db) == before
    return caught.value.message


def _create(w: DrawWorld, data: dict[str, Any]) -> Callable[[], Any]:
    def create() -> None:
        with w.db.unit_of_work() as s:
            lucky_draws.create_draw(s, tenant_id=w.tenant_id, keyring=w.keyring, actor=ACTOR, data=data)

    return create


def _open(w: DrawWorld, code: str = "spring") -> Callable[[], Any]:
    def open_it() -> None:
        with w.db.unit_of_work() as s:
            lucky_draws.open_draw(s, tenant_id=w.tenant_id, code=code, actor=ACTOR, at=T0)

    return open_it


def _allocate(w: DrawWorld, quantity: int, template: str = "C10") -> None:
    with w.db.unit_of_work() as s:
        set_allocation(
            s,
            tenant_id=w.tenant_id,
            template_code=template,
            store_id=w.points.stores["D1"],
            quantity=quantity,
            actor=ACTOR,
        )


def _coupon_prizes(*stocks: int, template: str = "C10") -> list[dict[str, Any]]:
    prizes: list[dict[str, Any]] = [
        {
            "code": f"c{n}",
            "name": f"券{n}",
            "kind": "coupon",
            "weight": 10,
            "stock": stock,
            "coupon_template": template,
        }
        for n, stock in enumerate(stocks)
    ]
    return [*prizes, {"code": "none", "name": "谢谢参与", "kind": "none", "weight": 50}]


# --- the stores' allocations -------------------------------------------------------------------------


def test_a_prize_may_not_count_on_the_budget_the_stores_allocations_hold(database: Database) -> None:
    w = make_draw_world(database, members=1)
    _allocate(w, 41)  # 9 of the 50 left for issues through no store: fewer than the prize's 10
    message = _refused(w, "prizes.1.stock", _create(w, draw_file()))
    assert message == (
        "the template's budget has 9 coupons left (41 more are allocated to stores): "
        "the prize's stock must be at most that"
    )
    _allocate(w, 40)
    _create(w, draw_file())()  # exactly 10 free: made
    _allocate(w, 41)  # the allocations grew since: it does not open
    _refused(w, "prizes.1.stock", _open(w))
    _allocate(w, 40)
    _open(w)()


# --- several prizes of one template ---------------------------------------------------------------------


def test_prizes_of_one_template_share_its_budget(database: Database) -> None:
    w = make_draw_world(database, members=2)
    message = _refused(w, "prizes.2.stock", _create(w, draw_file(prizes=_coupon_prizes(20, 20, 11))))
    assert message == (
        "the template's budget has 50 coupons left: the prizes of 'C10' share it, "
        "and together their stocks are more"
    )
    _create(w, draw_file(prizes=_coupon_prizes(20, 20, 10)))()  # exactly the budget: made
    with database.unit_of_work() as s:  # one coupon of the budget goes elsewhere before it opens
        issue_coupon(
            s, tenant_id=w.tenant_id, template_code="C10", member_id=w.member(1), issue_key="x", source="api"
        )
    _refused(w, "prizes.2.stock", _open(w))


# --- the template's validity ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("closes_at", "made"),
    [(None, False), (ENDS_AT + timedelta(seconds=1), False), (ENDS_AT, True)],
    ids=["no-end", "after", "at-the-end"],
)
def test_a_template_that_stops_issuing_before_the_draw_closes_is_no_prize(
    database: Database, closes_at: Any, made: bool
) -> None:
    w = make_draw_world(database, members=1)
    with database.unit_of_work() as s:
        fields = TEMPLATE | {"code": "C5D", "valid_days": None, "valid_until": ENDS_AT}
        create_template(s, tenant_id=w.tenant_id, actor=ACTOR, **fields)
    data = draw_file(
        closes_at=closes_at.isoformat() if closes_at else None,
        prizes=_coupon_prizes(10, template="C5D"),
    )
    if made:
        _create(w, data)()
        _open(w)()
        return
    message = _refused(w, "prizes.0.coupon_template", _create(w, data))
    assert message == f"coupon template 'C5D' issues until {ENDS_AT.isoformat()}: the draw must close by then"


def test_a_template_whose_validity_was_cut_short_does_not_open(database: Database) -> None:
    w = make_draw_world(database, members=1)
    _create(w, draw_file(closes_at=(T0 + timedelta(days=7)).isoformat()))()
    with database.unit_of_work() as s:
        s.execute(update(CouponTemplate).values(valid_days=None, valid_until=ENDS_AT))
    _refused(w, "prizes.1.coupon_template", _open(w))
