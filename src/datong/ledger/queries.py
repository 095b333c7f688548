"""Reads over the ledger: balances from transfers, the pending transfers still open, and a check that
every running total equals the sum of its transfers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from datong.ledger.models import PENDING, POST_PENDING, POSTED, Account, Transfer


@dataclass(frozen=True)
class Totals:
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int

    @property
    def credit_balance(self) -> int:
        """What a liability account (a member's points) holds and may still spend."""
        return self.credits_posted - self.debits_posted - self.debits_pending


def open_pending(*, tenant_id: str) -> Select[Transfer]:
    """A select of pending transfers that no later transfer has posted or voided."""
    resolution = aliased(Transfer)
    return select(Transfer).where(
        Transfer.tenant_id == tenant_id,
        Transfer.kind == PENDING,
        ~select(resolution.id).where(resolution.pending_id == Transfer.id).exists(),
    )


def account_totals(session: Session, account_id: str) -> Totals:
    """An account's four totals summed from its transfers: the ledger's truth."""
    mine = (Transfer.debit_account_id == account_id) | (Transfer.credit_account_id == account_id)
    return _summed_totals(session, mine).get(account_id, Totals(0, 0, 0, 0))


def _summed_totals(session: Session, scope: ColumnElement[bool]) -> dict[str, Totals]:
    """Every account's totals from the transfers in ``scope``, in four grouped sums: posted (or posted
    later) on each side, and still-open pending on each side."""
    resolution = aliased(Transfer)
    still_open = ~select(resolution.id).where(resolution.pending_id == Transfer.id).exists()
    posted = Transfer.kind.in_((POSTED, POST_PENDING))
    pending = (Transfer.kind == PENDING) & still_open

    def sums(side: InstrumentedAttribute[str], condition: ColumnElement[bool]) -> dict[str, int]:
        rows = session.execute(select(side, func.sum(Transfer.amount)).where(scope, condition).group_by(side))
        return {account_id: int(total) for account_id, total in rows}

    debits_pending = sums(Transfer.debit_account_id, pending)
    debits_posted = sums(Transfer.debit_account_id, posted)
    credits_pending = sums(Transfer.credit_account_id, pending)
    credits_posted = sums(Transfer.credit_account_id, posted)
    ids = {*debits_pending, *debits_posted, *credits_pending, *credits_posted}
    return {
        account_id: Totals(
            debits_pending.get(account_id, 0),
            debits_posted.get(account_id, 0),
            credits_pending.get(account_id, 0),
            credits_posted.get(account_id, 0),
        )
        for account_id in ids
    }


@dataclass(frozen=True)
class Discrepancy:
    account_id: str
    kept: Totals
    summed: Totals


def verify_ledger(session: Session, *, tenant_id: str) -> list[Discrepancy]:
    """Every account that keeps running totals, checked against its transfers; also that no limit is
    broken. An empty list means the ledger is consistent. Four grouped sums over the tenant's transfers,
    whatever the number of accounts."""
    totals = _summed_totals(session, Transfer.tenant_id == tenant_id)
    wrong: list[Discrepancy] = []
    accounts = session.scalars(
        select(Account).where(
            Account.tenant_id == tenant_id,
            Account.debits_must_not_exceed_credits.is_(True)
            | Account.credits_must_not_exceed_debits.is_(True),
        )
    )
    for account in accounts:
        kept = Totals(
            account.debits_pending, account.debits_posted, account.credits_pending, account.credits_posted
        )
        summed = totals.get(account.id, Totals(0, 0, 0, 0))
        over = (
            account.debits_must_not_exceed_credits
            and summed.debits_posted + summed.debits_pending > summed.credits_posted
        ) or (
            account.credits_must_not_exceed_debits
            and summed.credits_posted + summed.credits_pending > summed.debits_posted
        )
        if kept != summed or over:
            wrong.append(Discrepancy(account.id, kept, summed))
    return wrong


def history(
    session: Session, *, account_id: str, limit: int = 50, before: datetime | None = None
) -> list[Transfer]:
    """The account's transfers, newest first."""
    query = select(Transfer).where(
        (Transfer.debit_account_id == account_id) | (Transfer.credit_account_id == account_id)
    )
    if before is not None:
        query = query.where(Transfer.created_at < before)
    return list(session.scalars(query.order_by(Transfer.created_at.desc(), Transfer.id.desc()).limit(limit)))
