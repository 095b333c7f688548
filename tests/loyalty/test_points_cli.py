"""``datong points …`` as an operator runs it: load a program, migrate POS balances, earn for imported
orders, sweep expiry, settle a month, verify; on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from datong.channels.records import OrderFields
from datong.cli import app
from datong.core.db import Database
from datong.ledger.models import Transfer
from datong.loyalty import redemptions, service
from datong.loyalty.programs import get_program
from datong.members.models import Member
from datong.orders.service import IncomingOrder, upsert_orders
from datong.tenancy.models import Tenant
from tests.loyalty.helpers import ORG, PROGRAM
from tests.test_cli import _ok, cli_env, runner

__all__ = ["cli_env"]  # the fixture, used by name

POS_EXPORT = (
    "会员卡号,姓名,手机号,所属门店,积分余额\nC001,王芳,13800138000,D1,120\nC002,王芳,13800138000,F1,300\n"
)


def test_program_migration_settlement_and_expiry_from_the_command_line(
    cli_env: Database, tmp_path: Path
) -> None:
    _ok(["tenant", "create", "acme", "Acme 服饰"])
    (tmp_path / "org.json").write_text(json.dumps(ORG, ensure_ascii=False), encoding="utf-8")
    _ok(["org", "load", str(tmp_path / "org.json")])
    (tmp_path / "program.json").write_text(json.dumps(PROGRAM, ensure_ascii=False), encoding="utf-8")
    assert "program main loaded" in _ok(["points", "load-program", str(tmp_path / "program.json")])
    (tmp_path / "pos.csv").write_text(POS_EXPORT, encoding="utf-8")
    _ok(["import", "members", str(tmp_path / "pos.csv"), "--source", "pos_hq"])
    out = _ok(["points", "migrate"])
    assert "2 cards migrated (420 points); 0 already migrated; 0 cards (0 points)" in out
    assert "0 cards migrated (0 points); 2 already migrated" in _ok(["points", "migrate"])

    with cli_env.unit_of_work() as s:
        tenant_id = s.scalar(select(Tenant.id))
        assert tenant_id is not None
        member_id = s.scalar(select(Member.id).where(Member.status == "active"))
        assert member_id is not None
        at = datetime(2026, 10, 5, 4, tzinfo=UTC)
        fields = OrderFields("T100", "completed", "交易成功", 25000, 25000, created_at=at, completed_at=at)
        upsert_orders(
            s, tenant_id=tenant_id, incoming=[IncomingOrder("tmall", fields, member_id, "nick", "x", None)]
        )
        redemptions.redeem_points(
            s,
            program=get_program(s, tenant_id=tenant_id),
            member_id=member_id,
            points=420,
            channel="tmall",
            store_id=None,
            actor="system:test",
            at=at,
        )
    assert "1 orders earned 250 points" in _ok(["points", "earn-orders"])
    assert "0 orders earned 0 points" in _ok(["points", "earn-orders"])
    # A later Tmall export shows the order closed (the buyer got the money back): its points go back.
    with cli_env.unit_of_work() as s:
        closed = OrderFields("T100", "closed", "交易关闭", 25000, 25000, created_at=at, completed_at=at)
        upsert_orders(
            s, tenant_id=tenant_id, incoming=[IncomingOrder("tmall", closed, member_id, "nick", "x", None)]
        )
    assert "1 closed or refunded orders gave back 250 points" in _ok(["points", "earn-orders"])
    assert "0 closed or refunded orders gave back 0 points" in _ok(["points", "earn-orders"])

    settlement = tmp_path / "settle.csv"
    out = _ok(["points", "settle", "--period", "2026-10", "--csv", str(settlement)])
    # All 420 points spent on Tmall: HQ's 120 and the agent's 300, which the agent owes HQ.
    assert "AG1 厦门代理 pays HQ 300 fen" in out
    with settlement.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["creditor"], r["points"], r["amount_fen"]) for r in rows] == [("hq", "300", "300")]
    with cli_env.reading() as s:
        behind = set(s.scalars(select(Transfer.id).where(Transfer.code == "redeem")))
    assert set(rows[0]["transfer_ids"].split()) <= behind and len(rows[0]["transfer_ids"].split()) == 1

    bad = runner.invoke(app, ["points", "settle", "--period", "2026-13"])
    assert bad.exit_code != 0
    assert getattr(bad.exception, "field", None) == "period"

    # Only a goodwill adjustment made 13 months ago has expired: the migrated points were spent, the Tmall
    # order's taken back. A sweep dated ahead is refused.
    with cli_env.unit_of_work() as s:
        service.adjust_points(
            s, program=get_program(s, tenant_id=tenant_id), member_id=member_id, points=30, reason="致歉",
            actor="system:test", at=datetime.now(UTC) - timedelta(days=400),
        )  # fmt: skip
    ahead = runner.invoke(app, ["points", "expire", "--at", "2099-01-01T00:00:00+08:00"])
    assert getattr(ahead.exception, "field", None) == "at"
    out = _ok(["points", "expire"])
    assert "30 points expired from 1 lots on 1 accounts; 0 holds voided" in out
    assert "ledger consistent" in _ok(["points", "verify"])
