"""Clearing between owners. A point is a promise by the owner who issued it (HQ, an agent, a franchise
store): whoever honours it (gives the discount or the gift) is owed its value by the issuer, at the
program's ``fen_per_point``. Points given back on a refund reduce what is owed the same way.

The figures come from the ledger alone: a redemption transfer's credit account names the honouring
owner, and the lot it draws on names the issuer (the earning transfer's debit account).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Row, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from datong.core.clock import month_bounds
from datong.ledger.models import POST_PENDING, POSTED, Account, Transfer
from datong.loyalty.models import PointsLot, Program


@dataclass
class Obligation:
    """``debtor`` owes ``creditor`` for points the debtor issued and the creditor honoured."""

    debtor: str
    creditor: str
    points: int = 0
    transfer_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class NetPosition:
    debtor: str
    creditor: str
    amount_fen: int


@dataclass(frozen=True)
class Settlement:
    period: str
    fen_per_point: int
    obligations: list[Obligation]
    net: list[NetPosition]

    def amount_fen(self, obligation: Obligation) -> int:
        return obligation.points * self.fen_per_point


def settle(session: Session, *, program: Program, period: str) -> Settlement:
    """What each owner owes the others for the month ``period`` (``YYYY-MM``, China time)."""
    start, end = month_bounds(period)
    honoured_by = aliased(Account)

    def moves(code: str, honourer_side: InstrumentedAttribute[str]) -> list[Row[str, str, int, str, str]]:
        return list(
            session.execute(
                select(Transfer.id, Transfer.code, Transfer.amount, PointsLot.issuer, honoured_by.holder)
                .join(PointsLot, PointsLot.id == Transfer.lot_id)
                .join(honoured_by, honoured_by.id == honourer_side)
                .where(
                    Transfer.tenant_id == program.tenant_id,
                    Transfer.ledger_id == program.ledger_id,
                    Transfer.code == code,
                    Transfer.kind.in_((POSTED, POST_PENDING)),
                    Transfer.created_at >= start,
                    Transfer.created_at < end,
                )
                .order_by(Transfer.created_at, Transfer.id)
            ).all()
        )

    # A redemption credits the honouring owner's account; a give-back debits it.
    spent = moves("redeem", Transfer.credit_account_id) + moves("give_back", Transfer.debit_account_id)
    pairs: dict[tuple[str, str], Obligation] = {}
    for transfer_id, code, amount, issuer, honourer in spent:
        if issuer == honourer:
            continue
        item = pairs.setdefault((issuer, honourer), Obligation(issuer, honourer))
        item.points += amount if code == "redeem" else -amount
        item.transfer_ids.append(transfer_id)
    obligations = sorted(pairs.values(), key=lambda o: (o.debtor, o.creditor))
    net: dict[tuple[str, str], int] = {}
    for item in obligations:
        a, b = sorted((item.debtor, item.creditor))
        sign = 1 if item.debtor == a else -1
        net[(a, b)] = net.get((a, b), 0) + sign * item.points * program.fen_per_point
    positions = [
        NetPosition(a, b, amount) if amount > 0 else NetPosition(b, a, -amount)
        for (a, b), amount in sorted(net.items())
        if amount != 0
    ]
    return Settlement(period, program.fen_per_point, obligations, positions)
