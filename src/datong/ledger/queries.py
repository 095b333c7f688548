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
    resolution = aliased(Transfer)
    still_open = ~select(resolution.id).where(resolution.pending_id == Transfer.id).exists()
    posted = Transfer.kind.in_((POSTED, POST_PENDING))

    def total(side_column: InstrumentedAttribute[str], *conditions: ColumnElement[bool]) -> int:
        return int(
            session.scalar(
                select(func.coalesce(func.sum(Transfer.amount), 0)).where(
                    side_column == account_id, *conditions
                )
            )
            or 0
        )

    return Totals(
        debits_pending=total(Transfer.debit_account_id, Transfer.kind == PENDING, still_open),
        debits_posted=total(Transfer.debit_account_id, posted),
        credits_pending=total(Transfer.credit_account_id, Transfer.kind == PENDING, still_open),
        credits_posted=total(Transfer.credit_account_id, posted),
    )


@dataclass(frozen=True)
class Discrepancy:
    account_id: str
    kept: Totals
    summed: Totals


def verify_ledger(session: Session, *, tenant_id: str) -> list[Discrepancy]:
    """Every account that keeps running totals, checked against its transfers; also that no limit is
    broken. An empty list means the ledger is consistent. Four grouped sums over the tenant's transfers,
    whatever the number of accounts."""
    resolution = aliased(Transfer)
    still_open = ~select(resolution.id).where(resolution.pending_id == Transfer.id).exists()
    posted = Transfer.kind.in_((POSTED, POST_PENDING))
    pending = (Transfer.kind == PENDING) & still_open

    def sums(side: InstrumentedAttribute[str], condition: ColumnElement[bool]) -> dict[str, int]:
        rows = session.execute(
            select(side, func.sum(Transfer.amount))
            .where(Transfer.tenant_id == tenant_id, condition)
            .group_by(side)
        )
        return {account_id: int(total) for account_id, total in rows}

    debits_posted, credits_posted = (
        sums(Transfer.debit_account_id, posted),
        sums(Transfer.credit_account_id, posted),
    )
    debits_pending = sums(Transfer.debit_account_id, pending)
    credits_pending = sums(Transfer.credit_account_id, pending)
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
        summed = Totals(
            debits_pending.get(account.id, 0),
            debits_posted.get(account.id, 0),
            credits_pending.get(account.id, 0),
            credits_posted.get(account.id, 0),
        )
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
