"""What every channel importer yields: one :class:`ParsedRecord` per input row.

An importer only reads and normalises; it never touches the database. The import pipeline
(``channels/service.py``) stores every record as a source record (a failed one with its errors), then
hands the good ones to unification and to the orders domain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

# Identity kinds. Codes are strings; append new ones, never rename.
PHONE = "phone"
UNIONID = "unionid"
OPENID = "openid"  # namespace: the WeChat appid (openid is per app)
NICK = "nick"  # Taobao/Tmall buyer nick (买家会员名)
OUID = "ouid"  # namespace: the shop id (one per user per shop)
OMID = "omid"  # 会员通 id across one brand's shops
PIN = "pin"  # JD account (下单帐号)
CARD_NO = "card_no"  # namespace: the source system (card numbers are unique within it)
EMAIL = "email"

IDENTITY_KINDS = (PHONE, UNIONID, OPENID, NICK, OUID, OMID, PIN, CARD_NO, EMAIL)
PII_KINDS = frozenset({PHONE, EMAIL})  # stored encrypted, looked up by blind index


@dataclass(frozen=True)
class FieldError:
    field: str  # the column name as the file calls it
    reason: str


@dataclass(frozen=True)
class IdentityKey:
    """A strong identity: it names one account or card, so records that share it are one person."""

    kind: str
    value: str  # normalised (phones: 11 digits for mainland mobiles)
    namespace: str = ""


@dataclass
class PersonFields:
    """What a row says about the person who owns the account or card (not a receiver)."""

    name: str | None = None
    name_pinyin: str | None = None
    gender: str | None = None  # "M" | "F"
    birthday: date | None = None
    id_number: str | None = None
    province: str | None = None
    city: str | None = None
    district: str | None = None
    address: str | None = None  # the detail line, encrypted at rest
    nickname: str | None = None
    registered_at: datetime | None = None
    store_code: str | None = None  # 开卡门店 / 所属门店
    points_balance: int | None = None  # 积分余额, kept for the ledger's migration
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class WeakEvidence:
    """Hints that never join two members on their own (receiver, masked phone, address, nickname)."""

    receiver_name: str | None = None
    receiver_name_pinyin: str | None = None
    receiver_phone: str | None = None  # a full phone written on an order: may be someone else's
    masked_phone: str | None = None  # e.g. 138****1234: evidence, never a key
    receiver_province: str | None = None
    receiver_city: str | None = None
    receiver_district: str | None = None
    receiver_address: str | None = None


@dataclass
class OrderLineFields:
    title: str
    quantity: int
    sku: str | None = None
    category: str | None = None
    size: str | None = None
    colour: str | None = None
    unit_price_fen: int | None = None


@dataclass
class OrderFields:
    order_no: str
    status: str  # normalised: created | paid | shipped | completed | closed | refunded | unknown
    status_raw: str
    total_fen: int
    paid_fen: int
    postage_fen: int = 0
    created_at: datetime | None = None
    paid_at: datetime | None = None
    completed_at: datetime | None = None
    shop_id: str | None = None
    shop_name: str | None = None
    store_code: str | None = None
    lines: list[OrderLineFields] = field(default_factory=list)
    # The brand's own coupon codes used on the order (normalised), from the export's coupon column: the
    # coupon job (``coupons/orders.py``) redeems them. Platform coupons (天猫卡券 …) are not these.
    coupon_codes: list[str] = field(default_factory=list)


@dataclass
class ParsedRecord:
    row_no: int  # 1-based data row number in the file (the header is row 0)
    raw: dict[str, str]  # the row exactly as read, header → cell text
    identities: list[IdentityKey] = field(default_factory=list)
    person: PersonFields = field(default_factory=PersonFields)
    weak: WeakEvidence = field(default_factory=WeakEvidence)
    order: OrderFields | None = None
    errors: list[FieldError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors
