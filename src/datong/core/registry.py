"""Imports every domain's models so that ``Base.metadata`` knows all tables (for Alembic and tests)."""

from __future__ import annotations

import importlib

DOMAINS_WITH_MODELS = (
    "tenancy",
    "org",
    "members",
    "channels",
    "orders",
    "ledger",
    "loyalty",
    "coupons",
    "guides",
    "channels.wechat",
    "events",
    "jobs",
)


def load_models() -> None:
    for domain in DOMAINS_WITH_MODELS:
        importlib.import_module(f"datong.{domain}.models")
