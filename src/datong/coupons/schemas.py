"""Shapes of what comes in: a coupon template, a store's allocation, issuing a coupon, and the POS and
mini-program calls that validate and redeem (核销) one. What a field means is in ``rules.py``; the rules
a template must keep beyond its shape are checked by ``service.check_template``, each naming its field."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Code = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
Channel = Literal["pos", "miniprogram", "eshop", "wechat", "tmall", "jd"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TemplateIn(_Strict):
    code: str = Code
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["cash_off", "threshold", "discount", "exchange", "pickup"]
    amount_fen: int = Field(default=0, ge=0)
    threshold_fen: int = Field(default=0, ge=0)
    rate_pct: int = Field(default=100, ge=1, le=100)
    cap_fen: int | None = Field(default=None, gt=0)
    sku: str | None = Field(default=None, min_length=1, max_length=64)
    price_fen: int = Field(default=0, ge=0)
    online: bool = True
    offline: bool = True
    # In store: at any of these stores, or any store of these regions or agents (all empty: anywhere).
    store_codes: list[str] = Field(default=[], max_length=5000)
    region_codes: list[str] = Field(default=[], max_length=500)
    agent_codes: list[str] = Field(default=[], max_length=5000)
    skus: list[str] = Field(default=[], max_length=5000)
    categories: list[str] = Field(default=[], max_length=500)
    exclusive: bool = False
    with_points: bool = True
    one_per_category: bool = False
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None
    valid_days: int | None = Field(default=None, ge=1, le=3660)
    total_quantity: int | None = Field(default=None, ge=0)  # None: no budget
    per_member_limit: int | None = Field(default=None, ge=1)
    per_day_limit: int | None = Field(default=None, ge=1)  # per day (China time), all members together
    restore_on_refund: bool = True
    active: bool = True


class IssueIn(_Strict):
    member_id: str = Field(min_length=1, max_length=32)
    template: str = Field(min_length=1, max_length=40)
    # Issuing is idempotent by this key (per template): the same key gives the same coupon.
    issue_key: str = Field(min_length=1, max_length=128)
    # The store it is given through (a caller bound to a store: its own) and the guide who gave it; a
    # template with allocations draws on that store's share.
    store_code: str | None = Field(default=None, min_length=1, max_length=40)
    guide_code: str | None = Field(default=None, min_length=1, max_length=40)


class AllocationIn(_Strict):
    quantity: int = Field(ge=0, le=100_000_000)


class CouponLineIn(_Strict):
    sku: str | None = Field(default=None, max_length=64)
    category: str | None = Field(default=None, max_length=80)
    quantity: int = Field(gt=0, le=100000)
    unit_price_fen: int = Field(ge=0)


# A printed code, or the member page's dynamic code (``<coupon id>.<window>.<mac>``).
CouponCode = Annotated[str, Field(min_length=1, max_length=64)]


class ValidateIn(_Strict):
    code: CouponCode
    channel: Channel
    store_code: str | None = Field(default=None, max_length=40)
    lines: list[CouponLineIn] = Field(min_length=1, max_length=500)
    points_used: int = Field(default=0, ge=0)
    # The member presenting the coupon, when known: another member's coupon does not apply.
    member_id: str | None = Field(default=None, min_length=1, max_length=32)
    # The order it is for, when known: coupons already redeemed on it count for stacking.
    order_no: str | None = Field(default=None, min_length=1, max_length=64)


class RedeemIn(_Strict):
    code: CouponCode
    order_no: str = Field(min_length=1, max_length=64)
    channel: Channel
    store_code: str | None = Field(default=None, max_length=40)
    lines: list[CouponLineIn] = Field(min_length=1, max_length=500)
    points_used: int = Field(default=0, ge=0)
    member_id: str | None = Field(default=None, min_length=1, max_length=32)
