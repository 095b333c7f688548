"""A brand with a points program, stores of three owners, and members, for the points tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from datong.channels.records import OrderFields, OrderLineFields
from datong.core.db import Database
from datong.ledger.queries import verify_ledger
from datong.loyalty.lots import spendable_points
from datong.loyalty.models import Program
from datong.loyalty.programs import get_program, load_program, member_account
from datong.loyalty.queries import verify_lots
from datong.loyalty.service import earn_for_order
from datong.members.models import Member
from datong.orders.models import Order
from datong.orders.service import record_order
from datong.org.models import Agent, Store
from datong.org.service import load_org
from datong.tenancy.service import create_tenant

T0 = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)  # 12:00 in China
ACTOR = "system:test"

PROGRAM: dict[str, Any] = {
    "code": "main",
    "name": "会员积分",
    "points_per_yuan": 1,
    "fen_per_point": 1,
    "expiry": {"policy": "rolling_months", "months": 12},
    "tier_basis": "points",
    "hold_seconds": 600,
    "tiers": [
        {"code": "silver", "name": "银卡", "rank": 0, "threshold": 0, "birthday_bonus_points": 50},
        {
            "code": "gold",
            "name": "金卡",
            "rank": 1,
            "threshold": 1000,
            "earn_multiplier_pct": 150,
            "birthday_bonus_points": 200,
        },
    ],
    "earn_rules": [
        {"code": "shoes-x2", "name": "鞋类双倍", "categories": ["shoes"], "multiplier_pct": 200},
        {"code": "big-basket", "name": "满500送50", "min_spend_fen": 50000, "bonus_points": 50},
    ],
    "rewards": [{"code": "tote", "name": "帆布袋", "kind": "gift", "points_cost": 300}],
}

ORG: dict[str, Any] = {
    "agents": [{"code": "AG1", "name": "厦门代理"}],
    "stores": [
        {"code": "D1", "name": "直营一店", "kind": "direct", "city": "上海"},
        {"code": "F1", "name": "加盟一店", "kind": "franchise", "agent_code": "AG1", "city": "厦门"},
    ],
}


@dataclass
class PointsWorld:
    db: Database
    tenant_id: str
    stores: dict[str, str] = field(default_factory=dict)  # code → id
    agent_id: str = ""
    members: list[str] = field(default_factory=list)

    def program(self, s: Session) -> Program:
        return get_program(s, tenant_id=self.tenant_id, code="main")

    def party(self, store_code: str | None) -> str:
        if store_code == "F1":
            return f"agent:{self.agent_id}"
        return "hq"


def make_world(
    db: Database, *, members: int = 3, code: str = "shoes", program: dict[str, Any] | None = None
) -> PointsWorld:
    with db.unit_of_work() as s:
        tenant_id = create_tenant(s, code=code, name=f"{code} brand").id
        load_org(s, tenant_id=tenant_id, actor=ACTOR, data=ORG)
        load_program(s, tenant_id=tenant_id, data=program or PROGRAM, actor=ACTOR)
        world = PointsWorld(db, tenant_id)
        world.stores = dict(s.execute(select(Store.code, Store.id).where(Store.tenant_id == tenant_id)).all())
        world.agent_id = s.scalar(select(Agent.id).where(Agent.tenant_id == tenant_id)) or ""
        for index in range(members):
            member = Member(tenant_id=tenant_id, name=f"会员{index}", home_store_id=world.stores["D1"])
            s.add(member)
            s.flush()
            world.members.append(member.id)
    return world


def pos_order(
    s: Session,
    world: PointsWorld,
    member_id: str,
    order_no: str,
    paid_fen: int,
    *,
    store: str | None = "D1",
    channel: str = "pos",
    total_fen: int | None = None,
    lines: list[OrderLineFields] | None = None,
    at: datetime = T0,
    status: str = "completed",
) -> Order:
    fields = OrderFields(
        order_no=order_no,
        status=status,
        status_raw=status,
        total_fen=total_fen if total_fen is not None else paid_fen,
        paid_fen=paid_fen,
        created_at=at,
        completed_at=at if status == "completed" else None,
        lines=lines or [],
    )
    return record_order(
        s,
        tenant_id=world.tenant_id,
        channel=channel,
        fields=fields,
        member_id=member_id,
        store_id=world.stores[store] if store else None,
    )


def assert_consistent(db: Database, world: PointsWorld) -> None:
    """Every running total equals its transfers, no limit broken, every lot agrees with its transfers."""
    with db.reading() as s:
        assert verify_ledger(s, tenant_id=world.tenant_id) == []
        assert verify_lots(s, program=world.program(s)) == []


def earn_points(
    db: Database,
    world: PointsWorld,
    member: int,
    order_no: str,
    paid_fen: int,
    *,
    store: str | None = "D1",
    channel: str = "pos",
    total_fen: int | None = None,
    lines: list[OrderLineFields] | None = None,
    at: datetime = T0,
    status: str = "completed",
) -> int:
    """Record a sale of member number ``member`` and earn for it; the points it earned."""
    with db.unit_of_work() as s:
        order = pos_order(
            s, world, world.members[member], order_no, paid_fen, store=store, channel=channel,
            total_fen=total_fen, lines=lines, at=at, status=status,
        )  # fmt: skip
        return earn_for_order(s, program=world.program(s), order=order, actor=ACTOR, at=at).points


def balance(db: Database, world: PointsWorld, member: int, at: datetime = T0) -> int:
    """Member number ``member``'s spendable points at ``at``."""
    with db.reading() as s:
        account_id = member_account(s, world.program(s), world.members[member])
        return spendable_points(s, account_id=account_id, at=at)
