"""Shapes of what comes in to the guides API. Guides and stores are named by their codes (as in the org
file); what a field means, and the rules beyond its shape, are in ``rules.py`` and the services."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Code = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
OptionalCode = Field(default=None, min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
Period = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", examples=["2026-10"])
Reason = Field(min_length=1, max_length=300)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QrCodeIn(_Strict):
    kind: Literal["guide", "store", "campaign", "event"]
    name: str = Field(min_length=1, max_length=200)
    # A guide's card: the guide (a guide calling makes its own card and may leave this out).
    guide_code: str | None = OptionalCode
    # A store's code, and the store a campaign or event code is for (its scans are that store's touches).
    store_code: str | None = OptionalCode
    campaign_code: str | None = OptionalCode
    window_days: int | None = Field(default=None, ge=1, le=365)  # the campaign's own attribution window
    permanent: bool = False
    scene: str | None = Field(default=None, min_length=1, max_length=30)  # default: a short random one


class TouchIn(_Strict):
    member_id: str = Field(min_length=1, max_length=32)
    kind: Literal["link", "coupon", "visit"]
    guide_code: str | None = OptionalCode  # a guide calling touches as itself
    ref: str | None = Field(default=None, min_length=1, max_length=300)  # the link sent, the coupon


class AssignIn(_Strict):
    guide_code: str = Code


class HandOverIn(_Strict):
    guide_code: str = Code  # the guide who leaves
    to_guide_code: str | None = OptionalCode
    to_store_code: str | None = OptionalCode


class OrderRef(_Strict):
    """An order as the statement's lines show it: its channel and the channel's order number."""

    channel: str = Field(min_length=1, max_length=32)
    order_no: str = Field(min_length=1, max_length=64)


class AdjustIn(_Strict):
    guide_code: str = Code
    amount_fen: int = Field(ge=-10_000_000, le=10_000_000)  # positive: owed to the guide
    reason: str = Reason
    order: OrderRef | None = None  # the order the adjustment is about, if one


class DisputeIn(_Strict):
    guide_code: str = Code
    period: str = Period
    claim: str = Field(min_length=1, max_length=500)
    order: OrderRef | None = None  # the order disputed, if one


class ResolveIn(_Strict):
    outcome: Literal["adjust", "reject"]
    reason: str = Reason
    amount_fen: int | None = Field(default=None, ge=-10_000_000, le=10_000_000)  # with adjust
