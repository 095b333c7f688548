"""API shapes for members."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, Field


class ConsentIn(BaseModel):
    purpose: str = Field(
        description="marketing_sms | wechat_messages | personalised_marketing | share_with_agents"
    )
    granted: bool
    text_version: str = Field(
        min_length=1, max_length=40, description="the version of the text the member saw"
    )
    channel: str | None = Field(default=None, max_length=40)


class RegisterIn(BaseModel):
    source: str = Field(
        min_length=1, max_length=64, description="the calling system, e.g. pos_direct, miniprogram"
    )
    card_no: str | None = Field(default=None, max_length=64)
    phone: str | None = Field(default=None, max_length=32)
    unionid: str | None = Field(default=None, max_length=64)
    openid: str | None = Field(default=None, max_length=64)
    appid: str | None = Field(default=None, max_length=64)
    email: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=60)
    gender: str | None = Field(default=None, max_length=8)
    birthday: date | None = None
    store_code: str | None = Field(default=None, max_length=40)
    consents: list[ConsentIn] = Field(default_factory=list)


class RegisterOut(BaseModel):
    member_id: str
    created: bool


class MergeIn(BaseModel):
    survivor_id: str
    absorbed_id: str
    reason: str = Field(min_length=1, max_length=300)


class UnmergeIn(BaseModel):
    reason: str = Field(min_length=1, max_length=300)


class DeleteIn(BaseModel):
    reason: str = Field(min_length=1, max_length=300)


class MemberSummary(BaseModel):
    id: str
    name: str | None
    city: str | None
    home_store_id: str | None


MemberView = dict[str, Any]
