"""Writes to the ledger: open ledgers and accounts, lock an account, write transfers.

Every transfer is checked against the limit flags of both accounts before it is written; a transfer
that would break a limit raises :class:`LimitExceeded` and writes nothing. Running totals are moved by
one SQL ``UPDATE`` whose ``WHERE`` states the limit, so even a caller that forgot to lock the account
cannot take it below its limit: the update finds no row and the transfer is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from datong.core.clock import utcnow
from datong.core.db import is_sqlite, rowcount, upsert_insert
from datong.core.errors import Conflict, NotFound, ValidationFailed
from datong.core.ids import new_id
from datong.ledger.models import (
    PENDING,
    POST_PENDING,
    POSTED,
    UNITS,
    VOID_PENDING,
    Account,
    Ledger,
    Transfer,
)


class LimitExceeded(Conflict):
    """The transfer would take an account past a limit flag (a member's points below zero)."""

    code = "exceeds_balance"


@dataclass(frozen=True)
class Refs:
    """What a transfer was for; copied onto every transfer of an operation."""

    order_id: str | None = None
    store_id: str | None = None
    guide_id: str | None = None
    campaign_id: str | None = None
    external_ref: str | None = None
    reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def ensure_ledger(session: Session, *, tenant_id: str, code: str, unit: str, name: str) -> Ledger:
    if unit not in UNITS:
        raise ValidationFailed(f"unit must be one of {', '.join(UNITS)}", field="unit")
    query = select(Ledger).where(Ledger.tenant_id == tenant_id, Ledger.code == code)
    found = session.scalar(query)
    if found is None:
        # Insert-or-nothing: two requests opening the ledger at once both read the one row.
        session.execute(
            upsert_insert(session, Ledger)
            .values(id=new_id("ldg"), tenant_id=tenant_id, code=code, unit=unit, name=name)
            .on_conflict_do_nothing(index_elements=["tenant_id", "code"])
        )
        found = session.scalar(query)
        assert found is not None
    if found.unit != unit:
        raise Conflict(f"ledger {code} counts in {found.unit}, not {unit}", field="unit")
    return found


def ensure_account(
    session: Session,
    *,
    tenant_id: str,
    ledger_id: str,
    kind: str,
    holder: str,
    debits_must_not_exceed_credits: bool = False,
    credits_must_not_exceed_debits: bool = False,
    lock: bool = False,
) -> str:
    """The id of the account, opening it if it does not exist. Safe when two requests open it at once:
    the insert does nothing if the other got there first, and both read the one row. With ``lock`` the
    row is held until the transaction ends, as :func:`lock_account` does, in the same round trip."""
    natural_key = (tenant_id, ledger_id, kind, holder)
    if not lock:
        known = _COMMITTED_ACCOUNTS.get(natural_key)
        if known is not None:
            return known
    query = select(
        Account.id, Account.debits_must_not_exceed_credits, Account.credits_must_not_exceed_debits
    ).where(
        Account.tenant_id == tenant_id,
        Account.ledger_id == ledger_id,
        Account.kind == kind,
        Account.holder == holder,
    )
    if lock and not is_sqlite(session):
        query = query.with_for_update()
    row = session.execute(query).one_or_none()
    if row is not None:
        _remember_flags(row[0], row[1] or row[2])
        session.info.setdefault(_SEEN_ACCOUNTS, {})[natural_key] = row[0]
        return str(row[0])
    _open_accounts(
        session,
        [
            _account_row(
                tenant_id,
                ledger_id,
                kind,
                holder,
                debits_must_not_exceed_credits,
                credits_must_not_exceed_debits,
            )
        ],
    )
    row = session.execute(query).one()
    return str(row[0])


def ensure_accounts_locked(
    session: Session,
    *,
    tenant_id: str,
    ledger_id: str,
    kind: str,
    holders: list[str],
    debits_must_not_exceed_credits: bool = False,
) -> dict[str, str]:
    """:func:`ensure_account` with ``lock=True`` for many holders at once (a batch job): open the accounts
    that do not exist, then hold all of them in id order, so two writers never lock in opposite orders.
    Returns holder → account id."""
    _open_accounts(
        session,
        [_account_row(tenant_id, ledger_id, kind, h, debits_must_not_exceed_credits, False) for h in holders],
    )
    query = (
        select(Account.holder, Account.id)
        .where(
            Account.tenant_id == tenant_id,
            Account.ledger_id == ledger_id,
            Account.kind == kind,
            Account.holder.in_(holders),
        )
        .order_by(Account.id)
    )
    if not is_sqlite(session):
        query = query.with_for_update()
    return {holder: account_id for holder, account_id in session.execute(query)}


def _account_row(
    tenant_id: str, ledger_id: str, kind: str, holder: str, debits_limited: bool, credits_limited: bool
) -> dict[str, Any]:
    return {
        "id": new_id("acc"),
        "tenant_id": tenant_id,
        "ledger_id": ledger_id,
        "kind": kind,
        "holder": holder,
        "debits_must_not_exceed_credits": debits_limited,
        "credits_must_not_exceed_debits": credits_limited,
        "debits_pending": 0,
        "debits_posted": 0,
        "credits_pending": 0,
        "credits_posted": 0,
        "created_at": utcnow(),
    }


def _open_accounts(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert-or-nothing: an account another writer opened first is left as it is."""
    for start in range(0, len(rows), 500):
        session.execute(
            upsert_insert(session, Account)
            .values(rows[start : start + 500])
            .on_conflict_do_nothing(index_elements=["tenant_id", "ledger_id", "kind", "holder"])
        )


def lock_account(session: Session, account_id: str) -> Account:
    """Hold the account's row until the transaction ends, so reads of its lots and totals stay true.
    (SQLite's writers are already one at a time: every write transaction begins IMMEDIATE.)"""
    query = select(Account).where(Account.id == account_id).execution_options(populate_existing=True)
    if not is_sqlite(session):
        query = query.with_for_update()
    account = session.scalar(query)
    if account is None:
        raise NotFound(f"no account {account_id}", field="account_id")
    return account


def create_transfer(
    session: Session,
    *,
    tenant_id: str,
    ledger_id: str,
    debit_account_id: str,
    credit_account_id: str,
    amount: int,
    code: str,
    operation_id: str,
    actor: str,
    refs: Refs = Refs(),
    lot_id: str | None = None,
    pending: bool = False,
    timeout_at: datetime | None = None,
    at: datetime | None = None,
) -> Transfer:
    if amount <= 0:
        raise ValidationFailed("a transfer moves a positive amount", field="amount")
    if debit_account_id == credit_account_id:
        raise ValidationFailed("a transfer needs two different accounts", field="credit_account_id")
    bucket = "pending" if pending else "posted"
    _move(session, debit_account_id, "debits", bucket, amount)
    _move(session, credit_account_id, "credits", bucket, amount)
    transfer = Transfer(
        id=new_id("trf"),
        tenant_id=tenant_id,
        ledger_id=ledger_id,
        debit_account_id=debit_account_id,
        credit_account_id=credit_account_id,
        amount=amount,
        code=code,
        kind=PENDING if pending else POSTED,
        timeout_at=timeout_at if pending else None,
        operation_id=operation_id,
        lot_id=lot_id,
        order_id=refs.order_id,
        store_id=refs.store_id,
        guide_id=refs.guide_id,
        campaign_id=refs.campaign_id,
        external_ref=refs.external_ref,
        reason=refs.reason,
        detail=refs.detail,
        actor=actor,
        created_at=at or utcnow(),
    )
    session.add(transfer)
    return transfer


def resolve_pending(
    session: Session,
    *,
    pending: Transfer,
    post: bool,
    operation_id: str,
    actor: str,
    at: datetime | None = None,
) -> Transfer:
    """Post (``post=True``) or void a pending transfer: a new transfer naming it. The unique
    (tenant, pending_id) constraint makes a second resolution of the same pending transfer impossible."""
    if pending.kind != PENDING:
        raise ValidationFailed("only a pending transfer can be posted or voided", field="pending_id")
    for account_id, side in ((pending.debit_account_id, "debits"), (pending.credit_account_id, "credits")):
        _unreserve(session, account_id, side, pending.amount, post=post)
    transfer = Transfer(
        id=new_id("trf"),
        tenant_id=pending.tenant_id,
        ledger_id=pending.ledger_id,
        debit_account_id=pending.debit_account_id,
        credit_account_id=pending.credit_account_id,
        amount=pending.amount,
        code=pending.code,
        kind=POST_PENDING if post else VOID_PENDING,
        pending_id=pending.id,
        operation_id=operation_id,
        lot_id=pending.lot_id,
        order_id=pending.order_id,
        store_id=pending.store_id,
        guide_id=pending.guide_id,
        campaign_id=pending.campaign_id,
        external_ref=pending.external_ref,
        reason=pending.reason,
        detail=pending.detail,
        actor=actor,
        created_at=at or utcnow(),
    )
    session.add(transfer)
    return transfer


def _move(session: Session, account_id: str, side: str, bucket: str, amount: int) -> None:
    if not _keeps_totals(session, account_id):
        return  # see Account: only limit accounts keep running totals
    column = getattr(Account, f"{side}_{bucket}")
    if side == "debits":
        within_limit = Account.debits_must_not_exceed_credits.is_(False) | (
            Account.debits_posted + Account.debits_pending + amount <= Account.credits_posted
        )
    else:
        within_limit = Account.credits_must_not_exceed_debits.is_(False) | (
            Account.credits_posted + Account.credits_pending + amount <= Account.debits_posted
        )
    result = session.execute(
        update(Account)
        .where(Account.id == account_id, within_limit)
        .values({column.key: column + amount})
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        raise LimitExceeded(
            "not enough balance for this transfer", field="amount", account_id=account_id, amount=amount
        )


def _unreserve(session: Session, account_id: str, side: str, amount: int, *, post: bool) -> None:
    if not _keeps_totals(session, account_id):
        return
    pending_col = getattr(Account, f"{side}_pending")
    posted_col = getattr(Account, f"{side}_posted")
    values: dict[str, Any] = {pending_col.key: pending_col - amount}
    if post:
        values[posted_col.key] = posted_col + amount
    session.execute(
        update(Account)
        .where(Account.id == account_id)
        .values(values)
        .execution_options(synchronize_session=False)
    )


# Account flags never change once an account is open, so they are read once per process.
_FLAGS_CACHE: dict[str, bool] = {}
_FLAGS_CACHE_MAX = 100_000
# Account ids by (tenant, ledger, kind, holder), for accounts seen in a transaction that committed: an
# account is never deleted, so the id stays right. (An id seen in a transaction that rolled back is
# forgotten with it: that transaction may have been the one that opened the account.)
_COMMITTED_ACCOUNTS: dict[tuple[str, str, str, str], str] = {}
_SEEN_ACCOUNTS = "datong.ledger.accounts_seen"


def _remember_flags(account_id: str, keeps: bool) -> None:
    if len(_FLAGS_CACHE) >= _FLAGS_CACHE_MAX:
        _FLAGS_CACHE.clear()
    _FLAGS_CACHE[account_id] = keeps


@event.listens_for(Session, "after_commit")
def _keep_seen_accounts(session: Session) -> None:
    seen = session.info.pop(_SEEN_ACCOUNTS, None)
    if seen:
        if len(_COMMITTED_ACCOUNTS) + len(seen) > _FLAGS_CACHE_MAX:
            _COMMITTED_ACCOUNTS.clear()
        _COMMITTED_ACCOUNTS.update(seen)


@event.listens_for(Session, "after_rollback")
def _forget_seen_accounts(session: Session) -> None:
    session.info.pop(_SEEN_ACCOUNTS, None)


def _keeps_totals(session: Session, account_id: str) -> bool:
    cached = _FLAGS_CACHE.get(account_id)
    if cached is not None:
        return cached
    row = session.execute(
        select(Account.debits_must_not_exceed_credits, Account.credits_must_not_exceed_debits).where(
            Account.id == account_id
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"no account {account_id}", field="account_id")
    keeps = bool(row[0] or row[1])
    _remember_flags(account_id, keeps)
    return keeps
