"""Split settlement (分账) for an order, as pure functions: who receives what of a WeChat Pay payment.

The payment lands in the brand's merchant account (HQ). For an order credited to a franchise store,
WeChat Pay profit sharing then pays out, under the brand's plan ``Tenant.settings["profit_sharing"]``::

    {"max_ratio_bp": 3000,
     "agents": {"AG1": {"account": "1900000201", "share_bp": 2000}},
     "stores": {"F9": {"account": "1900000305", "share_bp": 2500}},
     "pay_guides": true}

- the franchisee its share of what was paid: the store's agent (``agents``, by agent code), or a
  franchise store without an agent itself (``stores``, by store code), as a ``MERCHANT_ID`` receiver;
- the guide credited with the order their commission (what is still owed after any clawback), to the
  guide's openid (``PERSONAL_OPENID``), when ``pay_guides`` is on and the guide has one;
- HQ keeps the rest. Nothing is split for a direct store's order beyond its guide's commission.

Together the receivers may get at most ``max_ratio_bp`` of the payment (WeChat Pay's cap for the
merchant, in basis points): a plan that would give more is refused, not trimmed. WeChat Pay takes at
most 50 receivers per request, so longer lists go in several requests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from datong.core.errors import Conflict, ValidationFailed

MAX_RECEIVERS_PER_REQUEST = 50
MERCHANT_ID, PERSONAL_OPENID = "MERCHANT_ID", "PERSONAL_OPENID"


@dataclass(frozen=True)
class Party:
    account: str
    share_bp: int


@dataclass(frozen=True)
class SplitPlan:
    max_ratio_bp: int
    agents: Mapping[str, Party]
    stores: Mapping[str, Party]
    pay_guides: bool


@dataclass(frozen=True)
class Line:
    party: str  # agent:<code> | store:<code> | guide:<code>
    type: str
    account: str
    amount_fen: int
    description: str


def _party(raw: Any, where: str) -> Party:
    if not isinstance(raw, dict):
        raise ValidationFailed("an object with account and share_bp", field=where)
    account, share = raw.get("account"), raw.get("share_bp")
    if not isinstance(account, str) or not account.isdigit() or len(account) > 32:
        raise ValidationFailed("account is the receiver's merchant id (digits)", field=f"{where}.account")
    if not isinstance(share, int) or isinstance(share, bool) or not 0 <= share <= 10000:
        raise ValidationFailed("share_bp is 0 to 10000 basis points", field=f"{where}.share_bp")
    return Party(account, share)


def parse_split_plan(raw: Mapping[str, Any] | None) -> SplitPlan:
    raw = raw or {}
    ratio = raw.get("max_ratio_bp", 3000)
    if not isinstance(ratio, int) or isinstance(ratio, bool) or not 0 <= ratio <= 10000:
        raise ValidationFailed("max_ratio_bp is 0 to 10000 basis points", field="profit_sharing.max_ratio_bp")
    tables: dict[str, dict[str, Party]] = {}
    for name in ("agents", "stores"):
        entries = raw.get(name, {})
        if not isinstance(entries, dict):
            raise ValidationFailed("an object keyed by code", field=f"profit_sharing.{name}")
        tables[name] = {code: _party(item, f"profit_sharing.{name}.{code}") for code, item in entries.items()}
    pay_guides = raw.get("pay_guides", False)
    if not isinstance(pay_guides, bool):
        raise ValidationFailed("true or false", field="profit_sharing.pay_guides")
    return SplitPlan(ratio, tables["agents"], tables["stores"], pay_guides)


def split_lines(
    plan: SplitPlan,
    *,
    paid_fen: int,
    agent_code: str | None,
    franchise_store_code: str | None,
    guide_code: str | None,
    guide_openid: str | None,
    commission_fen: int,
) -> list[Line]:
    """The receivers of one order's payment and their amounts; refused above the merchant's cap."""
    lines: list[Line] = []
    owner: tuple[str, Party] | None = None
    if agent_code is not None and agent_code in plan.agents:
        owner = (f"agent:{agent_code}", plan.agents[agent_code])
    elif franchise_store_code is not None and franchise_store_code in plan.stores:
        owner = (f"store:{franchise_store_code}", plan.stores[franchise_store_code])
    if owner is not None:
        amount = paid_fen * owner[1].share_bp // 10000
        if amount > 0:
            lines.append(Line(owner[0], MERCHANT_ID, owner[1].account, amount, "加盟门店销售分账"))
    if plan.pay_guides and guide_code and guide_openid and commission_fen > 0:
        lines.append(Line(f"guide:{guide_code}", PERSONAL_OPENID, guide_openid, commission_fen, "导购佣金"))
    cap = paid_fen * plan.max_ratio_bp // 10000
    total = sum(line.amount_fen for line in lines)
    if total > cap:
        raise Conflict(
            f"the receivers would get {total} fen of {paid_fen}, above the merchant's cap of {cap} "
            f"({plan.max_ratio_bp} basis points)",
            field="max_ratio_bp",
        )
    return lines


def batches(lines: Sequence[Line]) -> list[list[Line]]:
    """At most 50 receivers per request."""
    return [
        list(lines[i : i + MAX_RECEIVERS_PER_REQUEST])
        for i in range(0, len(lines), MAX_RECEIVERS_PER_REQUEST)
    ]
