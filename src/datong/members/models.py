"""Members, their identities, the raw source records behind them, merges and consents.

A member is one person. Identities are the accounts and cards that person holds; each came from a
source record, and carries the rule that put it on this member. Merges move identities, records,
orders and consents from one member to another and keep a list of what moved, so an unmerge can put
every one of them back.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from datong.core.clock import utcnow
from datong.core.db import Base, TenantScoped, Timestamped
from datong.core.ids import new_id

ACTIVE = "active"
MERGED = "merged"
DELETED = "deleted"


class Member(Base, TenantScoped, Timestamped):
    """One person. The golden-record columns are derived (``members/rules.py``) and rewritten on change."""

    __tablename__ = "member"
    __table_args__ = (Index("ix_member_tenant_status", "tenant_id", "status"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("mem"))
    status: Mapped[str] = mapped_column(String(16), default=ACTIVE)
    merged_into_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("member.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Golden record.
    name: Mapped[str | None] = mapped_column(String(120))
    name_pinyin: Mapped[str | None] = mapped_column(String(200), index=True)
    # Every declared name of this person in pinyin (not receivers): what rule 2 of matching compares.
    name_keys: Mapped[list[str]] = mapped_column(JSON, default=list)
    gender: Mapped[str | None] = mapped_column(String(1))
    birthday: Mapped[date | None] = mapped_column()
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    phone_bidx: Mapped[str | None] = mapped_column(String(32), index=True)
    id_number_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    province: Mapped[str | None] = mapped_column(String(40))
    city: Mapped[str | None] = mapped_column(String(40), index=True)
    district: Mapped[str | None] = mapped_column(String(40))
    address_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    nickname: Mapped[str | None] = mapped_column(String(120))
    registered_at: Mapped[datetime | None] = mapped_column()
    home_store_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("store.id"), index=True)
    guide_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("guide.id"), index=True)
    # Which source gave each golden attribute, so survivorship is explainable.
    golden_sources: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Identity(Base, TenantScoped, Timestamped):
    """An account or card a member holds.

    ``lookup`` is the normalised value, or its blind index for personal data (phones, e-mail). Exclusive
    kinds (a unionid, a card number in its source, a nick, a pin, an openid) belong to one member at most;
    a phone may sit on two members, because two cards with one phone and different names are two people.
    """

    __tablename__ = "identity"
    __table_args__ = (
        UniqueConstraint("tenant_id", "kind", "namespace", "lookup", "member_id"),
        Index(
            "uq_identity_exclusive",
            "tenant_id",
            "kind",
            "namespace",
            "lookup",
            unique=True,
            sqlite_where=text("is_exclusive = 1"),
            postgresql_where=text("is_exclusive"),
        ),
        Index("ix_identity_lookup", "tenant_id", "lookup"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("idn"))
    member_id: Mapped[str] = mapped_column(String(32), ForeignKey("member.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    namespace: Mapped[str] = mapped_column(String(64), default="")
    lookup: Mapped[str] = mapped_column(String(128))
    is_exclusive: Mapped[bool] = mapped_column()
    value: Mapped[str | None] = mapped_column(String(128))  # plaintext for non-personal kinds only
    value_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    mask_bidx: Mapped[str | None] = mapped_column(String(32), index=True)  # phones: index of 138****1234
    source: Mapped[str] = mapped_column(String(64))
    source_record_id: Mapped[str | None] = mapped_column(String(32))
    rule: Mapped[str] = mapped_column(String(64))
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class SourceRecord(Base, TenantScoped, Timestamped):
    """One input row exactly as received (encrypted), with its outcome. Failed rows are kept too."""

    __tablename__ = "source_record"
    __table_args__ = (
        UniqueConstraint("tenant_id", "source", "fingerprint"),
        Index("ix_source_record_batch", "batch_id", "row_no"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("src"))
    batch_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("import_batch.id"))
    source: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(32))  # the import kind or API that brought it
    row_no: Mapped[int | None] = mapped_column()
    fingerprint: Mapped[str] = mapped_column(String(64))
    raw_enc: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16))  # ok | failed
    errors: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    member_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("member.id"), index=True)
    match_rule: Mapped[str | None] = mapped_column(String(64))
    # What unification needs to run again without decrypting: identity lookups, weak evidence,
    # and the non-sensitive person fields used by the golden record.
    keys: Mapped[list[str]] = mapped_column(JSON, default=list)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    person: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    pii_enc: Mapped[bytes | None] = mapped_column(LargeBinary)


class MergeEvent(Base, TenantScoped):
    """``absorbed`` was merged into ``survivor`` on this evidence; ``moved`` lists what changed hands."""

    __tablename__ = "merge_event"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("mrg"))
    survivor_id: Mapped[str] = mapped_column(String(32), ForeignKey("member.id"), index=True)
    absorbed_id: Mapped[str] = mapped_column(String(32), ForeignKey("member.id"), index=True)
    rule: Mapped[str] = mapped_column(String(64))
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    moved: Mapped[dict[str, list[str]]] = mapped_column(JSON, default=dict)
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    undone_at: Mapped[datetime | None] = mapped_column()
    undone_by: Mapped[str | None] = mapped_column(String(64))


class Separation(Base, TenantScoped, Timestamped):
    """Two members a person said are different (an unmerge): unification never joins them again."""

    __tablename__ = "separation"
    __table_args__ = (UniqueConstraint("tenant_id", "member_a", "member_b"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("sep"))
    member_a: Mapped[str] = mapped_column(String(32), ForeignKey("member.id"))
    member_b: Mapped[str] = mapped_column(String(32), ForeignKey("member.id"))
    reason: Mapped[str] = mapped_column(String(300))


class Consent(Base, TenantScoped):
    """One consent decision; the newest per purpose is in force. Append-only, so history is kept."""

    __tablename__ = "consent"
    __table_args__ = (Index("ix_consent_member_purpose", "tenant_id", "member_id", "purpose", "at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=lambda: new_id("cns"))
    member_id: Mapped[str] = mapped_column(String(32), ForeignKey("member.id"))
    purpose: Mapped[str] = mapped_column(String(40))
    granted: Mapped[bool] = mapped_column()
    at: Mapped[datetime] = mapped_column(default=utcnow)
    channel: Mapped[str] = mapped_column(String(40))
    text_version: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(64))
