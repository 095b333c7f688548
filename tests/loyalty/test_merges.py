"""Points follow the person through a merge, and go back with an unmerge."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from datong.core.crypto import Keyring
from datong.core.db import Database
from datong.ledger.models import Transfer
from datong.loyalty import redemptions, refunds
from datong.loyalty.models import PointsLot
from datong.loyalty.programs import member_account
from datong.loyalty.queries import points_summary
from datong.members.service import merge_members, unmerge
from datong.orders.service import record_refund
from tests.loyalty.helpers import (
    ACTOR,
    T0,
    PointsWorld,
    assert_consistent,
    balance,
    earn_points,
    make_world,
    pos_order,
)


def _merge(db: Database, world: PointsWorld) -> str:
    with db.unit_of_work() as s:
        event = merge_members(
            s,
            tenant_id=world.tenant_id,
            survivor_id=world.members[0],
            absorbed_id=world.members[1],
            rule="manual",
            evidence={"reason": "same person"},
            actor=ACTOR,
        )
        return event.id


def test_a_merge_moves_every_lot_with_its_issuer_and_expiry_and_voids_open_holds(database: Database) -> None:
    world = make_world(database)
    earn_points(database, world, 0, "A1", 10000, store="D1")  # 100, HQ's
    earn_points(database, world, 1, "B1", 20000, store="F1", at=T0 - timedelta(days=10))  # 200, the agent's
    with database.unit_of_work() as s:
        held = redemptions.redeem_points(
            s, program=world.program(s), member_id=world.members[1], points=50, channel="pos",
            store_id=world.stores["D1"], hold=True, actor=ACTOR, at=T0,
        )  # fmt: skip
    _merge(database, world)
    assert (balance(database, world, 0), balance(database, world, 1)) == (300, 0)
    with database.reading() as s:
        account = member_account(s, world.program(s), world.members[0])
        lots = s.scalars(
            select(PointsLot).where(PointsLot.account_id == account).order_by(PointsLot.expires_at)
        )
        assert [(lot.issuer, lot.remaining, lot.code) for lot in lots] == [
            (world.party("F1"), 200, "merge"),
            ("hq", 100, "earn_purchase"),
        ]
        summary = points_summary(s, program=world.program(s), member_id=world.members[0], at=T0)
    assert [e["points"] for e in summary["expiring"]] == [200, 100]  # the moved lot keeps its expiry
    with database.unit_of_work() as s:
        resolution = s.scalar(select(Transfer.kind).where(Transfer.pending_id.in_(held.transfer_ids)))
    assert resolution == "void_pending"
    assert_consistent(database, world)


def test_a_refund_after_the_merge_claws_back_from_the_moved_lot_and_unmerge_moves_the_rest_back(
    database: Database, keyring: Keyring
) -> None:
    world = make_world(database)
    earn_points(database, world, 0, "A1", 10000)  # 100
    earn_points(database, world, 1, "B1", 20000, at=T0 - timedelta(days=10))  # 200, expires first
    merge_id = _merge(database, world)
    with database.unit_of_work() as s:
        spent = redemptions.redeem_points(
            s, program=world.program(s), member_id=world.members[0], points=120, channel="pos",
            store_id=world.stores["D1"], actor=ACTOR, at=T0,
        )  # fmt: skip
    assert spent.balance == 180  # 80 left of B's moved lot, A's 100
    with database.unit_of_work() as s:  # B1 (now the survivor's order) is refunded in half
        order = pos_order(s, world, world.members[0], "B1", 20000, at=T0 - timedelta(days=10))
        refund, _ = record_refund(
            s, tenant_id=world.tenant_id, order=order, refund_no="R1", amount_fen=10000, at=T0
        )
        result = refunds.refund_points(
            s, program=world.program(s), order=order, refund=refund, actor=ACTOR, at=T0
        )
    assert (result.clawed_back, result.shortfall, result.balance) == (100, 0, 80)
    with database.unit_of_work() as s:
        unmerge(
            s, tenant_id=world.tenant_id, keyring=keyring, merge_id=merge_id, actor=ACTOR, reason="两个人"
        )
    # B's lot had 200: 120 spent and 80 clawed back while merged (with 20 from A's), so nothing goes back.
    assert (balance(database, world, 0), balance(database, world, 1)) == (80, 0)
    assert_consistent(database, world)


def test_unmerge_gives_back_what_is_left_of_the_moved_lots(database: Database, keyring: Keyring) -> None:
    world = make_world(database)
    earn_points(database, world, 0, "A1", 10000)  # 100
    earn_points(database, world, 1, "B1", 20000, at=T0 - timedelta(days=10))  # 200
    merge_id = _merge(database, world)
    with database.unit_of_work() as s:
        redemptions.redeem_points(
            s, program=world.program(s), member_id=world.members[0], points=50, channel="pos",
            store_id=world.stores["D1"], actor=ACTOR, at=T0,
        )  # fmt: skip
    with database.unit_of_work() as s:
        unmerge(
            s, tenant_id=world.tenant_id, keyring=keyring, merge_id=merge_id, actor=ACTOR, reason="两个人"
        )
    assert (balance(database, world, 0), balance(database, world, 1)) == (100, 150)
    with database.reading() as s:
        codes = list(
            s.scalars(
                select(Transfer.code)
                .where(Transfer.tenant_id == world.tenant_id, Transfer.external_ref == merge_id)
                .order_by(Transfer.created_at)
            )
        )
    assert codes == ["merge", "unmerge"]
    assert_consistent(database, world)
