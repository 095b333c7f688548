"""``datong guides …`` as an operator runs it, on SQLite and PostgreSQL: load the plan, attribute, post and
take back commission, the month's statement as CSV and Excel (read back), KPIs, a guide's hand-over."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy import select

from datong.channels.records import OrderFields
from datong.cli import app
from datong.core.clock import CHINA_TZ
from datong.core.db import Database
from datong.guides import service
from datong.guides.models import BindingChange
from datong.ledger.models import Transfer
from datong.members.models import Member
from datong.orders.models import Order
from datong.orders.service import IncomingOrder, upsert_orders
from datong.org.models import Guide
from datong.tenancy.models import AuditEntry, Tenant
from tests.loyalty.helpers import ORG
from tests.test_cli import _ok, cli_env, runner

__all__ = ["cli_env"]  # the fixture, used by name

GUIDES_ORG = {
    **ORG,
    "stores": [
        {**ORG["stores"][0], "guides": [{"code": "G1", "name": "小林"}, {"code": "G2", "name": "小陈"}]},
        ORG["stores"][1],
    ],
}
PLAN: dict[str, Any] = {
    "guides": {"binding": "first_protected", "window_days": 15, "landing_url": "https://m.acme.example/g"},
    "commission": {"rules": [{"code": "base", "rate_bp": 500}]},
}
SCANNED = datetime(2026, 10, 3, 12, tzinfo=CHINA_TZ)
BOUGHT = datetime(2026, 10, 8, 12, tzinfo=CHINA_TZ)


def _setup(tmp_path: Path) -> None:
    _ok(["tenant", "create", "acme", "Acme 服饰"])
    (tmp_path / "org.json").write_text(json.dumps(GUIDES_ORG, ensure_ascii=False), encoding="utf-8")
    _ok(["org", "load", str(tmp_path / "org.json")])


def _fails(args: list[str]) -> str | None:
    result = runner.invoke(app, args)
    assert result.exit_code != 0, result.output
    return getattr(result.exception, "field", None)


def _settings(db: Database) -> dict[str, Any]:
    with db.reading() as s:
        tenant = s.scalar(select(Tenant))
        assert tenant is not None
        return dict(tenant.settings or {})


@pytest.mark.parametrize(
    ("plan", "field"),
    [
        ({"guides": {"binding": "first_scan"}}, "guides.binding"),
        ({"guides": {"window_days": 0}}, "guides.window_days"),
        ({"guides": {"landing_url": "m.acme.example/g"}}, "guides.landing_url"),
        ({"guides": {"landing_url": "https://m.acme.example/g#top"}}, "guides.landing_url"),
        ({"guides": {"windows": 15}}, "guides.windows"),
        ({"guides": []}, "guides"),
        ({"commission": {"rules": [{"code": "a", "rate_bp": 20000}]}}, "commission.rules.0.rate_bp"),
        ({"commision": {"rules": []}}, "commision"),
        ({}, "file"),
        ([], "file"),
    ],
)
def test_a_bad_plan_names_its_field_and_changes_nothing(
    cli_env: Database, tmp_path: Path, plan: Any, field: str
) -> None:
    _setup(tmp_path)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan), encoding="utf-8")
    before = _settings(cli_env)
    assert _fails(["guides", "load-plan", str(path)]) == field
    assert _settings(cli_env) == before
    path.write_text("{not json", encoding="utf-8")
    assert _fails(["guides", "load-plan", str(path)]) == "file"


def _member_following_g1(db: Database) -> tuple[str, str]:
    """A member who followed the brand through G1's card (the WeChat callback's work), and a Tmall order
    of theirs five days later: (member id, order id)."""
    with db.unit_of_work() as s:
        tenant_id = s.scalar(select(Tenant.id))
        g1 = s.scalar(select(Guide.id).where(Guide.code == "G1"))
        assert tenant_id is not None and g1 is not None
        member = Member(tenant_id=tenant_id, name="王芳")
        s.add(member)
        s.flush()
        card = service.create_qr_code(
            s, tenant_id=tenant_id, actor="system:test", kind="guide", name="名片", guide_id=g1
        )
        service.record_scan(
            s, tenant_id=tenant_id, member_id=member.id, scene=card.scene, at=SCANNED, kind="subscribe"
        )
        fields = OrderFields(
            "TM-1",
            "completed",
            "交易成功",
            39900,
            39900,
            created_at=BOUGHT,
            paid_at=BOUGHT,
            completed_at=BOUGHT,
        )
        upsert_orders(
            s, tenant_id=tenant_id, incoming=[IncomingOrder("tmall", fields, member.id, "nick", "n", None)]
        )
        order_id = s.scalar(select(Order.id).where(Order.order_no == "TM-1"))
        assert order_id is not None
        return member.id, order_id


def test_plan_attribution_commission_statement_kpis_and_hand_over(cli_env: Database, tmp_path: Path) -> None:
    _setup(tmp_path)
    (tmp_path / "plan.json").write_text(json.dumps(PLAN), encoding="utf-8")
    before = _settings(cli_env)
    assert "loaded guides and commission" in _ok(["guides", "load-plan", str(tmp_path / "plan.json")])
    assert _settings(cli_env) == {**before, **PLAN}
    with cli_env.reading() as s:
        assert s.scalars(select(AuditEntry.action).where(AuditEntry.action.like("guides.%"))).all() == [
            "guides.load_plan"
        ]
    member_id, order_id = _member_following_g1(cli_env)

    assert "1 orders looked at, 1 credited (399.00 yuan)" in _ok(["guides", "attribute", "--days", "3660"])
    assert "0 orders looked at, 0 credited (0.00 yuan)" in _ok(["guides", "attribute", "--days", "3660"])
    out = _ok(["guides", "commission"])
    assert "1 orders earned 19.95 yuan of commission" in out  # 5% of 399
    assert "0 refunded or closed orders gave back 0.00 yuan" in out
    assert "0 orders earned 0.00 yuan" in _ok(["guides", "commission"])
    # A later export: the buyer got the money back.
    with cli_env.unit_of_work() as s:
        tenant_id = s.scalar(select(Tenant.id))
        assert tenant_id is not None
        closed = OrderFields("TM-1", "closed", "交易关闭", 39900, 39900, created_at=BOUGHT, paid_at=BOUGHT)
        upsert_orders(
            s, tenant_id=tenant_id, incoming=[IncomingOrder("tmall", closed, member_id, "nick", "n", None)]
        )
    assert "1 refunded or closed orders gave back 19.95 yuan" in _ok(["guides", "commission"])

    with cli_env.reading() as s:
        moves = s.scalars(
            select(Transfer).where(Transfer.order_id == order_id).order_by(Transfer.created_at)
        ).all()
        assert [(t.code, t.amount) for t in moves] == [("commission", 1995), ("commission_clawback", 1995)]
        times = [t.created_at.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S") for t in moves]
        ids = [t.id for t in moves]
    period = times[0][:7]
    summary = tmp_path / "statement.csv"
    out = _ok(["guides", "statement", "--period", period, "--csv", str(summary)])
    assert f"written to {summary} and {tmp_path / 'statement-lines.csv'}" in out
    with summary.open(encoding="utf-8-sig", newline="") as handle:
        assert list(csv.reader(handle)) == [
            [
                "导购编号",
                "导购",
                "门店",
                "订单数",
                "佣金(元)",
                "退款扣回(元)",
                "调整(元)",
                "已分账支付(元)",
                "应付(元)",
            ],
            ["G1", "小林", "D1", "1", "19.95", "19.95", "0.00", "0.00", "0.00"],
            ["合计", "", "", "1", "19.95", "19.95", "0.00", "0.00", "0.00"],
        ]
    with (tmp_path / "statement-lines.csv").open(encoding="utf-8-sig", newline="") as handle:
        assert list(csv.reader(handle)) == [
            ["导购编号", "导购", "时间", "类型", "金额(元)", "渠道", "订单号", "原因", "流水号"],
            ["G1", "小林", times[0], "佣金", "19.95", "tmall", "TM-1", "", ids[0]],
            ["G1", "小林", times[1], "退款扣回", "-19.95", "tmall", "TM-1", "", ids[1]],
        ]
    book_path = tmp_path / "statement.xlsx"
    assert f"written to {book_path}" in _ok(
        ["guides", "statement", "--period", period, "--xlsx", str(book_path)]
    )
    book = openpyxl.load_workbook(io.BytesIO(book_path.read_bytes()))
    assert book.sheetnames == ["汇总", "明细"]
    assert [list(r) for r in book["汇总"].iter_rows(values_only=True)] == [
        [
            "导购编号",
            "导购",
            "门店",
            "订单数",
            "佣金(元)",
            "退款扣回(元)",
            "调整(元)",
            "已分账支付(元)",
            "应付(元)",
        ],
        ["G1", "小林", "D1", 1, 19.95, 19.95, 0, 0, 0],
        ["合计", None, None, 1, 19.95, 19.95, 0, 0, 0],
    ]
    assert [list(r) for r in book["明细"].iter_rows(values_only=True)][1:] == [
        ["G1", "小林", times[0], "佣金", 19.95, "tmall", "TM-1", None, ids[0]],
        ["G1", "小林", times[1], "退款扣回", -19.95, "tmall", "TM-1", None, ids[1]],
    ]
    assert _fails(["guides", "statement", "--period", "2026-13"]) == "period"
    assert _fails(["guides", "statement", "--period", period, "--csv", "a.csv", "--xlsx", "b.xlsx"]) == "xlsx"

    out = _ok(["guides", "kpis", "--period", "2026-10", "--by", "guide"])
    # G1: a fan, a member bound, an order of 399 yuan credited; commission counts in the month it is posted.
    [row] = [line for line in out.splitlines() if "G1" in line]
    assert [cell.strip() for cell in row.split("│")[1:-1]] == ["G1", "小林", "1", "1", "1", "399.00", "0.00"]
    assert _fails(["guides", "kpis", "--period", "2026-10", "--by", "region"]) == "by"

    assert _fails(["guides", "hand-over", "G1"]) == "to_guide"
    assert _fails(["guides", "hand-over", "G1", "--to-guide", "G2", "--to-store", "D1"]) == "to_guide"
    assert _fails(["guides", "hand-over", "G1", "--to-store", "NOPE"]) == "to_store"
    assert _fails(["guides", "hand-over", "G9", "--to-guide", "G2"]) == "guide_code"
    with cli_env.reading() as s:
        assert s.scalar(select(Member.guide_id).where(Member.id == member_id)) is not None
        assert s.scalars(select(BindingChange.reason)).all() == ["scan"]
    assert "G1 has left; 1 members moved to G2" in _ok(["guides", "hand-over", "G1", "--to-guide", "G2"])
    with cli_env.reading() as s:
        g1, g2 = (s.scalar(select(Guide).where(Guide.code == c)) for c in ("G1", "G2"))
        assert g1 is not None and g2 is not None and not g1.active and g1.left_at is not None
        assert s.scalar(select(Member.guide_id).where(Member.id == member_id)) == g2.id
        assert sorted(s.scalars(select(BindingChange.reason)).all()) == ["handover", "scan"]
