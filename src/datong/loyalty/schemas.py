"""Shapes of what comes in: a program file, and the POS and mini-program calls."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

Code = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExpiryIn(_Strict):
    policy: Literal["rolling_months", "end_of_next_year", "never"]
    months: int | None = Field(default=None, ge=1, le=120)

    @model_validator(mode="after")
    def _months_for_rolling(self) -> ExpiryIn:
        if self.policy == "rolling_months" and self.months is None:
            raise ValueError("rolling_months needs months")
        return self


class TierIn(_Strict):
    code: str = Code
    name: str = Field(min_length=1, max_length=120)
    rank: int = Field(ge=0)
    threshold: int = Field(ge=0)
    earn_multiplier_pct: int = Field(default=100, ge=100, le=1000)
    birthday_bonus_points: int = Field(default=0, ge=0)


class EarnRuleIn(_Strict):
    code: str = Code
    name: str = Field(min_length=1, max_length=200)
    channels: list[str] = []
    store_codes: list[str] = []
    categories: list[str] = []
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    min_spend_fen: int = Field(default=0, ge=0)
    multiplier_pct: int = Field(default=100, ge=100, le=1000)
    bonus_points: int = Field(default=0, ge=0)
    active: bool = True


class RewardIn(_Strict):
    code: str = Code
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["gift", "coupon"]
    points_cost: int = Field(gt=0)
    coupon_template: str | None = Field(default=None, max_length=40)
    active: bool = True

    @model_validator(mode="after")
    def _coupon_names_its_template(self) -> RewardIn:
        if (self.kind == "coupon") != (self.coupon_template is not None):
            raise ValueError("a coupon reward names its coupon_template; a gift names none")
        return self


class ProgramIn(_Strict):
    code: str = Code
    name: str = Field(min_length=1, max_length=200)
    points_per_yuan: int = Field(ge=0, le=1000)
    fen_per_point: int = Field(ge=1, le=10000)
    expiry: ExpiryIn
    tier_basis: Literal["points", "spend"] = "points"
    hold_seconds: int = Field(default=900, ge=10, le=86400)
    tiers: list[TierIn] = []
    earn_rules: list[EarnRuleIn] = []
    rewards: list[RewardIn] = []


# --- API ------------------------------------------------------------------------------------------


class LineIn(_Strict):
    title: str = Field(min_length=1, max_length=300)
    quantity: int = Field(gt=0, le=100000)
    unit_price_fen: int = Field(ge=0)
    sku: str | None = Field(default=None, max_length=64)
    category: str | None = Field(default=None, max_length=80)
    size: str | None = Field(default=None, max_length=20)
    colour: str | None = Field(default=None, max_length=40)


class OrderIn(_Strict):
    channel: Literal["pos", "miniprogram", "eshop"]
    order_no: str = Field(min_length=1, max_length=64)
    store_code: str | None = Field(default=None, max_length=40)
    # The guide who rang up the sale at the till: the sale is credited to them directly (guides).
    guide_code: str | None = Field(default=None, min_length=1, max_length=40)
    status: Literal["paid", "completed"] = "completed"
    total_fen: int = Field(ge=0)
    paid_fen: int = Field(ge=0)
    ordered_at: AwareDatetime | None = None
    lines: list[LineIn] = Field(default=[], max_length=500)


class EarnIn(_Strict):
    member_id: str = Field(min_length=1, max_length=32)
    program: str | None = None
    order: OrderIn


class RedeemIn(_Strict):
    member_id: str = Field(min_length=1, max_length=32)
    program: str | None = None
    points: int | None = Field(default=None, gt=0)
    reward_code: str | None = None
    channel: Literal["pos", "miniprogram", "eshop", "tmall", "jd"]
    store_code: str | None = Field(default=None, max_length=40)
    order_no: str | None = Field(default=None, max_length=64)
    hold: bool = False

    @model_validator(mode="after")
    def _points_or_reward(self) -> RedeemIn:
        if (self.points is None) == (self.reward_code is None):
            raise ValueError("give points, or a reward_code, not both")
        return self


class RefundLineIn(_Strict):
    line_no: int = Field(gt=0)
    quantity: int = Field(gt=0)


class RefundIn(_Strict):
    program: str | None = None
    channel: str = Field(min_length=1, max_length=32)
    order_no: str = Field(min_length=1, max_length=64)
    refund_no: str = Field(min_length=1, max_length=64)
    amount_fen: int = Field(gt=0)
    lines: list[RefundLineIn] = []
    reason: str | None = Field(default=None, max_length=300)


class AdjustIn(_Strict):
    member_id: str = Field(min_length=1, max_length=32)
    program: str | None = None
    points: int
    reason: str = Field(min_length=1, max_length=300)

    @model_validator(mode="after")
    def _not_zero(self) -> AdjustIn:
        if self.points == 0:
            raise ValueError("an adjustment moves at least one point")
        return self


class HoldActionIn(_Strict):
    program: str | None = None
