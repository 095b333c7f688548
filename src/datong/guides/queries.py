"""Reads for guides: the brand's guide policy, a guide, a store; commission statements and KPIs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from datong.core.clock import month_bounds
from datong.core.errors import NotFound, ValidationFailed
from datong.guides import rules
from datong.guides.models import Attribution, BindingChange, Touch
from datong.ledger.models import Account, Ledger, Transfer
from datong.orders.models import Order
from datong.org.models import Agent, Guide, Store
from datong.tenancy.models import Tenant


def guide_policy(session: Session, *, tenant_id: str) -> rules.Policy:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"no brand {tenant_id}", field="tenant_id")
    return rules.parse_policy((tenant.settings or {}).get("guides"))


def get_guide(session: Session, *, tenant_id: str, guide_id: str) -> Guide:
    guide = session.get(Guide, guide_id)
    if guide is None or guide.tenant_id != tenant_id:
        raise NotFound(f"no guide {guide_id}", field="guide_id")
    return guide


def guide_at_store(session: Session, *, tenant_id: str, code: str, store_id: str | None) -> Guide:
    """The guide with this code who works at the store (a sale rung up there); else a clear error."""
    guide = session.scalar(select(Guide).where(Guide.tenant_id == tenant_id, Guide.code == code))
    if guide is None:
        raise ValidationFailed(f"no guide {code!r}", field="order.guide_code")
    if store_id is None or guide.store_id != store_id:
        raise ValidationFailed("this guide does not work at the sale's store", field="order.guide_code")
    if not guide.active:
        raise ValidationFailed("this guide has left", field="order.guide_code")
    return guide


def get_store(session: Session, *, tenant_id: str, store_id: str) -> Store:
    store = session.get(Store, store_id)
    if store is None or store.tenant_id != tenant_id:
        raise NotFound(f"no store {store_id}", field="store_id")
    return store


def binding_history(session: Session, *, tenant_id: str, member_id: str) -> list[BindingChange]:
    """Every change of the member's exclusive guide, oldest first."""
    return list(
        session.scalars(
            select(BindingChange)
            .where(BindingChange.tenant_id == tenant_id, BindingChange.member_id == member_id)
            .order_by(BindingChange.at, BindingChange.id)
        )
    )


def attribution_of(session: Session, *, tenant_id: str, order_id: str) -> Attribution | None:
    return session.scalar(
        select(Attribution).where(Attribution.tenant_id == tenant_id, Attribution.order_id == order_id)
    )


def codes_and_names(
    session: Session, *, tenant_id: str, by: str, keys: Iterable[str]
) -> dict[str, tuple[str, str]]:
    """The code and name of each guide, store or agent id (``by``), for statements and KPIs."""
    models: dict[str, type[Guide] | type[Store] | type[Agent]] = {
        "guide": Guide,
        "store": Store,
        "agent": Agent,
    }
    model = models[by]
    wanted = sorted({key for key in keys if key})
    rows = session.execute(
        select(model.id, model.code, model.name).where(model.tenant_id == tenant_id, model.id.in_(wanted))
    )
    return {row.id: (row.code, row.name) for row in rows}


# --- statements and KPIs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StatementLine:
    guide_id: str
    at: datetime
    code: str  # commission | commission_clawback | commission_adjust
    amount_fen: int  # signed: what it did to the guide's due
    order_no: str | None
    channel: str | None
    reason: str | None
    transfer_id: str


@dataclass
class StatementRow:
    guide_id: str
    guide_code: str
    guide_name: str
    store_code: str | None
    earned_fen: int = 0
    clawed_back_fen: int = 0
    adjusted_fen: int = 0
    orders: int = 0
    paid_out_fen: int = 0  # paid to the guide through WeChat Pay profit sharing: no longer due

    @property
    def net_fen(self) -> int:
        """What is still due to the guide for the month."""
        return self.earned_fen - self.clawed_back_fen + self.adjusted_fen - self.paid_out_fen


def commission_statement(
    session: Session, *, tenant_id: str, period: str, guide_ids: Iterable[str] | None = None
) -> tuple[list[StatementRow], list[StatementLine]]:
    """Each guide's commission for a month (China time): earned, taken back, adjusted, paid out through
    profit sharing, what is still due, and every
    transfer behind the figures. A refund in a later month is taken back in that month."""
    start, end = _period(period)
    query = (
        select(Transfer, Account.holder, Order.order_no, Order.channel)
        .join(Ledger, Ledger.id == Transfer.ledger_id)
        .join(Account, Account.id == Transfer.credit_account_id)
        .outerjoin(Order, Order.id == Transfer.order_id)
        .where(
            Transfer.tenant_id == tenant_id,
            Ledger.code == "commission",
            Transfer.created_at >= start,
            Transfer.created_at < end,
        )
        .order_by(Transfer.created_at, Transfer.id)
    )
    wanted = set(guide_ids) if guide_ids is not None else None
    rows: dict[str, StatementRow] = {}
    lines: list[StatementLine] = []
    for transfer, credit_holder, order_no, channel in session.execute(query):
        guide_id = transfer.guide_id
        if guide_id is None or (wanted is not None and guide_id not in wanted):
            continue
        to_guide = credit_holder == f"guide:{guide_id}"
        signed = transfer.amount if to_guide else -transfer.amount
        row = rows.get(guide_id) or rows.setdefault(guide_id, _statement_row(session, guide_id))
        if transfer.code == "commission":
            row.earned_fen += transfer.amount
            row.orders += 1
        elif transfer.code == "commission_clawback":
            row.clawed_back_fen += transfer.amount
        elif transfer.code == "commission_payout":
            row.paid_out_fen += transfer.amount
        else:
            row.adjusted_fen += signed
        lines.append(
            StatementLine(
                guide_id,
                transfer.created_at,
                transfer.code,
                signed,
                order_no,
                channel,
                transfer.reason,
                transfer.id,
            )
        )
    return sorted(rows.values(), key=lambda r: (r.store_code or "", r.guide_code)), lines


def _statement_row(session: Session, guide_id: str) -> StatementRow:
    guide = session.get(Guide, guide_id)
    assert guide is not None
    store = session.get(Store, guide.store_id)
    return StatementRow(guide.id, guide.code, guide.name, store.code if store else None)


def _period(period: str) -> tuple[datetime, datetime]:
    try:
        return month_bounds(period)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="period") from None


@dataclass
class Kpi:
    key: str  # the guide's, store's or agent's id ("" for HQ's own online sales without a store)
    fans_added: int = 0
    members_bound: int = 0
    attributed_orders: int = 0
    attributed_gmv_fen: int = 0
    commission_fen: int = 0


def guide_kpis(session: Session, *, tenant_id: str, period: str, by: str) -> list[Kpi]:
    """Fans added (follows through a code), members bound, attributed orders and their GMV, and net
    commission, for a month, by ``guide``, ``store`` or ``agent``."""
    if by not in ("guide", "store", "agent"):
        raise ValidationFailed("by is guide, store or agent", field="by")
    start, end = _period(period)
    kpis: dict[str, Kpi] = {}

    def add(guide_id: str | None, store_id: str | None, **values: int) -> None:
        key = _key(session, by, guide_id, store_id)
        if key is None:
            return
        kpi = kpis.setdefault(key, Kpi(key))
        for name, value in values.items():
            setattr(kpi, name, getattr(kpi, name) + value)

    for guide_id, store_id in session.execute(
        select(Touch.guide_id, Touch.store_id).where(
            Touch.tenant_id == tenant_id, Touch.kind == "subscribe", Touch.at >= start, Touch.at < end
        )
    ):
        add(guide_id, store_id, fans_added=1)
    for guide_id, store_id in session.execute(
        select(BindingChange.to_guide_id, BindingChange.to_store_id).where(
            BindingChange.tenant_id == tenant_id,
            BindingChange.to_guide_id.is_not(None),
            BindingChange.reason.in_(("scan", "assign")),
            BindingChange.at >= start,
            BindingChange.at < end,
        )
    ):
        add(guide_id, store_id, members_bound=1)
    for guide_id, store_id, amount in session.execute(
        select(Attribution.guide_id, Attribution.store_id, Attribution.amount_fen).where(
            Attribution.tenant_id == tenant_id, Attribution.at >= start, Attribution.at < end
        )
    ):
        add(guide_id, store_id, attributed_orders=1, attributed_gmv_fen=amount)
    statement, _ = commission_statement(session, tenant_id=tenant_id, period=period)
    for row in statement:
        guide = session.get(Guide, row.guide_id)
        add(row.guide_id, guide.store_id if guide else None, commission_fen=row.net_fen)
    return sorted(kpis.values(), key=lambda k: k.key)


def _key(session: Session, by: str, guide_id: str | None, store_id: str | None) -> str | None:
    if by == "guide":
        return guide_id
    if by == "store":
        return store_id
    store = session.get(Store, store_id) if store_id else None
    return (store.agent_id or "") if store else None
