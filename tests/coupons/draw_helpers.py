"""A brand with a points program, a coupon template and members holding points, for the lucky draw tests;
a draw file to start from, and a snapshot of everything stored (to check that a refusal changed nothing)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from datong.core.crypto import Keyring
from datong.core.db import Base, Database
from datong.coupons import lucky_draws
from datong.coupons.lucky_draws import Entered
from datong.coupons.models import Draw
from datong.coupons.service import create_template
from tests.loyalty.helpers import PointsWorld, balance, earn_points, make_world

T0 = datetime(2026, 3, 10, 4, tzinfo=UTC)  # 12:00 in China
ACTOR = "system:test"
TEMPLATE: dict[str, Any] = {
    "code": "C10",
    "name": "抽奖立减10元",
    "kind": "cash_off",
    "amount_fen": 1000,
    "valid_days": 30,
    "total_quantity": 50,
}
START_POINTS = 300  # every member's points before a test: one sale of 300 yuan


def draw_file(code: str = "spring", **changes: Any) -> dict[str, Any]:
    """A draw as a brand writes it: free entries, points and pass codes, four kinds of prize."""
    return {
        "code": code,
        "name": "春季抽奖",
        "free_per_day": 1,
        "points_cost": 100,
        "pass_codes": True,
        "prizes": [
            {"code": "bag", "name": "帆布袋", "kind": "goods", "weight": 5, "stock": 3},
            {
                "code": "c10",
                "name": "立减10元券",
                "kind": "coupon",
                "weight": 20,
                "stock": 10,
                "coupon_template": "C10",
            },
            {"code": "p50", "name": "50积分", "kind": "points", "weight": 25, "stock": 10, "points": 50},
            {"code": "none", "name": "谢谢参与", "kind": "none", "weight": 50},
        ],
    } | changes


def only(kind: str, **prize: Any) -> list[dict[str, Any]]:
    """A prize table of one prize of ``kind``, unlimited: every entry wins it."""
    return [{"code": kind, "name": f"only {kind}", "kind": kind, "weight": 1} | prize]


@dataclass
class DrawWorld:
    db: Database
    keyring: Keyring
    points: PointsWorld

    @property
    def tenant_id(self) -> str:
        return self.points.tenant_id

    def member(self, index: int) -> str:
        return self.points.members[index]

    def balance(self, index: int, at: datetime = T0) -> int:
        return balance(self.db, self.points, index, at)

    def open(self, data: dict[str, Any], at: datetime = T0) -> Draw:
        with self.db.unit_of_work() as s:
            draw = lucky_draws.create_draw(
                s, tenant_id=self.tenant_id, keyring=self.keyring, actor=ACTOR, data=data
            )
            return lucky_draws.open_draw(s, tenant_id=self.tenant_id, code=draw.code, actor=ACTOR, at=at)

    def enter(
        self,
        member: int | str,
        code: str = "spring",
        source: str = "free",
        pass_code: str | None = None,
        at: datetime = T0,
    ) -> Entered:
        member_id = self.member(member) if isinstance(member, int) else member
        with self.db.unit_of_work() as s:
            return lucky_draws.enter_draw(
                s,
                tenant_id=self.tenant_id,
                keyring=self.keyring,
                code=code,
                member_id=member_id,
                source=source,
                pass_code=pass_code,
                actor=ACTOR,
                at=at,
            )


def make_draw_world(db: Database, *, members: int = 3) -> DrawWorld:
    world = make_world(db, members=members, code="draws")
    with db.unit_of_work() as s:
        create_template(s, tenant_id=world.tenant_id, actor=ACTOR, **TEMPLATE)
    for index in range(members):
        earn_points(db, world, index, f"O{index}", START_POINTS * 100, at=T0)
    return DrawWorld(db, Keyring(master=os.urandom(32)), world)


def snapshot(db: Database) -> dict[str, Any]:
    """Rows in every table, and every counter an entry moves: the draws' entry counts, the prizes' stock,
    the pass codes used, the coupons' budgets, the points left in lots and the accounts' totals."""
    parts = [f"(SELECT count(*) FROM {t}) AS {t}" for t in sorted(Base.metadata.tables)]
    sums = {
        "entries": ("entry_count", "draw"),
        "stock_left": ("remaining", "draw_prize"),
        "coupons_issued": ("issued_count", "coupon_template"),
        "points_left": ("remaining", "loyalty_points_lot"),
        "debits": ("debits_posted", "ledger_account"),
        "credits": ("credits_posted", "ledger_account"),
    }
    parts += [
        f"(SELECT CAST(coalesce(sum({column}), 0) AS BIGINT) FROM {table}) AS {name}"
        for name, (column, table) in sums.items()
    ]
    parts.append("(SELECT count(*) FROM draw_pass_code WHERE entry_id IS NOT NULL) AS pass_codes_used")
    parts.append("(SELECT count(*) FROM draw_entry WHERE collected_at IS NOT NULL) AS collected")
    with db.reading() as s:
        return dict(s.execute(text("SELECT " + ", ".join(parts))).mappings().one())
