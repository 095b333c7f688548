"""A double-entry ledger after TigerBeetle's data model: ledgers with a unit, accounts with balance-limit
flags, and immutable transfers. Corrections are new transfers; nothing here is ever updated except the
running totals of accounts that carry a limit (see ``Account``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from datong.core.clock import utcnow
from datong.core.db import Base, TenantScoped, Timestamped
from datong.core.ids import new_id

# Units a ledger may count in. One ledger, one unit: points never meet fen in a transfer.
UNITS = ("points", "fen")

# Transfer kinds (TigerBeetle's flags): a pending transfer reserves the amount until a later transfer
# posts or voids it, or until it times out.
POSTED = "posted"
PENDING = "pending"
POST_PENDING = "post_pending"
VOID_PENDING = "void_pending"
KINDS = (POSTED, PENDING, POST_PENDING, VOID_PENDING)


class Ledger(Base, TenantScoped, Timestamped):
    __tablename__ = "ledger"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("ldg"))
    code: Mapped[str] = mapped_column(String(64))
    unit: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))


class Account(Base, TenantScoped, Timestamped):
    """One account per (ledger, kind, holder): a member's points, an owner's issuance, ...

    ``holder`` names who the account belongs to: a member id, or an owner party (``hq``,
    ``agent:<id>``, ``store:<id>``). An account with a limit flag keeps running totals, updated in the
    transaction that writes the transfer under a lock on the row, so the limit holds under any
    concurrency. An account without a limit keeps none: a brand-wide account that every sale touches
    would otherwise be one hot row that serialises every POS call. Its balance is the sum of its
    transfers (``queries.account_totals``), which is also how every running total is checked.
    """

    __tablename__ = "ledger_account"
    __table_args__ = (UniqueConstraint("tenant_id", "ledger_id", "kind", "holder"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("acc"))
    ledger_id: Mapped[str] = mapped_column(String(32), ForeignKey("ledger.id"))
    kind: Mapped[str] = mapped_column(String(32))  # member | issuance | redemption | breakage | ...
    holder: Mapped[str] = mapped_column(String(64))
    debits_must_not_exceed_credits: Mapped[bool] = mapped_column(default=False)
    credits_must_not_exceed_debits: Mapped[bool] = mapped_column(default=False)
    debits_pending: Mapped[int] = mapped_column(BigInteger, default=0)
    debits_posted: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_pending: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_posted: Mapped[int] = mapped_column(BigInteger, default=0)

    @property
    def keeps_totals(self) -> bool:
        return self.debits_must_not_exceed_credits or self.credits_must_not_exceed_debits


class Transfer(Base, TenantScoped):
    """An immutable movement of ``amount`` from the debit account to the credit account.

    ``operation_id`` groups the transfers one request wrote (a redemption that draws on three lots is
    three transfers). ``lot_id`` is the earlier credit a debit draws on (for points: the earning lot),
    which is how clearing knows who issued the points that were spent.
    """

    __tablename__ = "ledger_transfer"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("debit_account_id <> credit_account_id", name="accounts_differ"),
        # A pending transfer is posted or voided at most once.
        UniqueConstraint("tenant_id", "pending_id"),
        Index("ix_ledger_transfer_debit", "debit_account_id", "created_at"),
        Index("ix_ledger_transfer_credit", "credit_account_id", "created_at"),
        Index("ix_ledger_transfer_operation", "tenant_id", "operation_id"),
        Index("ix_ledger_transfer_order", "tenant_id", "order_id"),
        Index("ix_ledger_transfer_code", "tenant_id", "ledger_id", "code", "created_at"),
        Index("ix_ledger_transfer_lot", "lot_id"),
        Index("ix_ledger_transfer_external", "tenant_id", "code", "external_ref"),
        # An opening balance is migrated once per source card.
        Index(
            "uq_ledger_transfer_migrated_card",
            "tenant_id",
            "ledger_id",
            "external_ref",
            unique=True,
            sqlite_where=text("code = 'migrate'"),
            postgresql_where=text("code = 'migrate'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("trf"))
    ledger_id: Mapped[str] = mapped_column(String(32), ForeignKey("ledger.id"))
    debit_account_id: Mapped[str] = mapped_column(String(32), ForeignKey("ledger_account.id"))
    credit_account_id: Mapped[str] = mapped_column(String(32), ForeignKey("ledger_account.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    code: Mapped[str] = mapped_column(String(32))  # earn_purchase | redeem | expire | ...
    kind: Mapped[str] = mapped_column(String(16), default=POSTED)
    pending_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("ledger_transfer.id"))
    timeout_at: Mapped[datetime | None] = mapped_column()
    operation_id: Mapped[str] = mapped_column(String(32))
    lot_id: Mapped[str | None] = mapped_column(String(32))
    # References: what the movement was for.
    order_id: Mapped[str | None] = mapped_column(String(32))
    store_id: Mapped[str | None] = mapped_column(String(32))
    guide_id: Mapped[str | None] = mapped_column(String(32))
    campaign_id: Mapped[str | None] = mapped_column(String(32))
    external_ref: Mapped[str | None] = mapped_column(String(64))  # a refund, a source card, a reward
    actor: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(300))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
