"""Shapes of lucky draws (抽奖) in and out of the API and the CLI: a draw file with its prizes, an entry,
a batch of pass codes, collecting goods at a store; and how a draw, an entry and the audit are shown.
The rules a draw must keep beyond its shape are checked by ``lucky_draws.create_draw``, each naming its
field."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from datong.coupons.codes import display_code
from datong.coupons.models import Draw, DrawEntry, DrawPrize

Code = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
PrizeKind = Literal["none", "coupon", "points", "goods"]
Source = Literal["pass_code", "points", "free"]
MAX_PASS_CODES = 100_000  # in one batch: one print run


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PrizeIn(_Strict):
    code: str = Code
    name: str = Field(min_length=1, max_length=200)
    kind: PrizeKind
    # The odds: weight / the sum of the weights of the prizes still in stock.
    weight: int = Field(gt=0, le=1_000_000_000)
    stock: int | None = Field(default=None, ge=0)  # None: unlimited (no prize, at least, is)
    coupon_template: str | None = Field(default=None, min_length=1, max_length=40)  # kind coupon
    points: int | None = Field(default=None, gt=0, le=10_000_000)  # kind points


class DrawIn(_Strict):
    code: str = Code
    name: str = Field(min_length=1, max_length=200)
    opens_at: AwareDatetime | None = None  # entries from then (None: as soon as it is opened)
    closes_at: AwareDatetime | None = None  # and until then (None: until it is closed)
    pass_codes: bool = False  # one entry per code printed in a pack or on a receipt
    points_cost: int | None = Field(default=None, gt=0)  # one entry for so many points (None: not sold)
    free_per_day: int = Field(default=0, ge=0, le=1000)  # free entries per member per day (China time)
    per_member_limit: int | None = Field(default=None, ge=1)  # entries per member, all ways in
    per_member_daily_limit: int | None = Field(default=None, ge=1)
    # In this order: the order of the weight bands, which the audit replays.
    prizes: list[PrizeIn] = Field(min_length=1, max_length=100)


class EnterIn(_Strict):
    member_id: str = Field(min_length=1, max_length=32)
    source: Source
    pass_code: str | None = Field(default=None, min_length=1, max_length=64)  # with source pass_code


class PassCodesIn(_Strict):
    count: int = Field(gt=0, le=MAX_PASS_CODES)
    batch: str = Field(min_length=1, max_length=64)  # e.g. the print run


class CollectIn(_Strict):
    store_code: str | None = Field(default=None, min_length=1, max_length=40)  # None: the caller's own


# --- what goes out -----------------------------------------------------------------------------------


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def prize_view(prize: DrawPrize) -> dict[str, Any]:
    return {
        "position": prize.position,
        "code": prize.code,
        "name": prize.name,
        "kind": prize.kind,
        "weight": prize.weight,
        "stock": prize.stock,
        "remaining": prize.remaining,
        "coupon_template": prize.coupon_template,
        "points": prize.points,
    }


def draw_view(draw: Draw, prizes: list[DrawPrize]) -> dict[str, Any]:
    """A draw as HQ sees it: the commitment always, the seed once the draw is closed."""
    return {
        "id": draw.id,
        "code": draw.code,
        "name": draw.name,
        "status": draw.status,
        "opens_at": _iso(draw.opens_at),
        "closes_at": _iso(draw.closes_at),
        "pass_codes": draw.pass_codes,
        "points_cost": draw.points_cost,
        "free_per_day": draw.free_per_day,
        "per_member_limit": draw.per_member_limit,
        "per_member_daily_limit": draw.per_member_daily_limit,
        "commitment": draw.commitment,
        "seed": draw.revealed_seed,
        "entry_count": draw.entry_count,
        "opened_at": _iso(draw.opened_at),
        "closed_at": _iso(draw.closed_at),
        "prizes": [prize_view(p) for p in prizes],
    }


def entry_view(entry: DrawEntry, prize: DrawPrize, coupon_code: str | None) -> dict[str, Any]:
    """An entry as the member's page and the store see it: what it won, and how to get it."""
    return {
        "id": entry.id,
        "entry_no": entry.entry_no,
        "member_id": entry.member_id,
        "source": entry.source,
        "at": _iso(entry.at),
        "day": entry.day.isoformat(),
        "prize": {"code": prize.code, "name": prize.name, "kind": prize.kind, "points": prize.points},
        "coupon_code": coupon_code,
        "pickup_code": entry.pickup_code,
        "pickup_display": display_code(entry.pickup_code) if entry.pickup_code else None,
        "collected_at": _iso(entry.collected_at),
        "collected_store_id": entry.collected_store_id,
    }
