"""The route matrix's vocabulary: who holds which right, which objects each caller may see, what an
endpoint row says, and the helpers the per-domain ``matrix_*`` modules share (see test_route_matrix.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from datong.coupons.codes import ALPHABET, BadCode, normalize_code
from tests.api.conftest import (
    AWAY,
    CALLERS,
    MEMBERS,
    ROLES,
    STORE_CODES,
    Brand,
    World,
)

UNAUTHENTICATED = frozenset({"anonymous", "bad_token"})
EVERYONE = frozenset(CALLERS)
AUTHENTICATED = EVERYONE - UNAUTHENTICATED
# Who holds each right. Brand 2's administrator holds every right, in brand 2.
MEMBER_READERS = AUTHENTICATED  # every role and both keys: members:read
MEMBER_WRITERS = AUTHENTICATED - {"guide"}  # members:write
HQ = frozenset({"hq_admin", "hq_operator", "other_brand_admin"})  # merge, export, imports
ADMINS = frozenset({"hq_admin", "other_brand_admin"})  # delete, unmask, audit
ORG_READERS = frozenset({*ROLES, "other_brand_admin"})  # org:read (users only, not the keys)
POINTS_READERS = AUTHENTICATED  # points:read: every role and both keys
POINTS_WRITERS = AUTHENTICATED - {"guide"}  # points:write: earn, redeem, confirm or void a hold, refund
POINTS_ADJUSTERS = ADMINS  # points:adjust
POINTS_SETTLERS = HQ  # points:settle
COUPON_READERS = AUTHENTICATED  # coupons:read: every role and both keys
COUPON_WRITERS = AUTHENTICATED - {"guide"}  # coupons:write: issue, validate, redeem, reverse
COUPON_ADMINS = HQ  # coupons:admin: templates

UNKNOWN_MEMBER = "mem_00000000000000000000000000"
UNKNOWN_MERGE = "mrg_00000000000000000000000000"
UNKNOWN_BATCH = "imp_00000000000000000000000000"
UNKNOWN_STORE = "sto_00000000000000000000000000"
UNKNOWN_PHONE = "13600000000"
UNKNOWN_HOLD = "op_00000000000000000000000000"
UNKNOWN_REDEMPTION = "cpr_00000000000000000000000000"


def well_formed(body: str) -> str:
    """``body`` with the check character that makes it a valid coupon code."""
    for check in ALPHABET:
        try:
            return normalize_code(body + check)
        except BadCode:
            continue
    raise AssertionError(body)


UNKNOWN_CODE = well_formed("000000000000")  # a valid code that no coupon has

# --- which objects each caller may see ---------------------------------------------------------

B1_MEMBERS = frozenset(MEMBERS)  # a1_guide, a1, a2, b1, direct, online
MEMBER_TARGETS = (*MEMBERS, "other_brand", "unknown")
SEES_MEMBERS: Mapping[str, frozenset[str]] = {
    "hq_admin": B1_MEMBERS,
    "hq_operator": B1_MEMBERS,
    "pos_key": B1_MEMBERS,  # brand-wide key
    "agent_manager": frozenset({"a1_guide", "a1", "a2"}),  # agent A's stores A1 and A2
    "store_manager": frozenset({"a1_guide", "a1"}),  # store A1
    "guide": frozenset({"a1_guide"}),  # the members bound to guide G1
    "store_key": frozenset({"direct"}),  # the key bound to store D1
    "other_brand_admin": frozenset({"other_brand"}),  # brand 2's own member only
}
# Lookups filter rather than refuse: a caller finds its own brand's holders of the phone, in its scope.
LOOKUP_SEES: Mapping[str, frozenset[str]] = {**SEES_MEMBERS, "other_brand_admin": B1_MEMBERS}

STORE_TARGETS = (*STORE_CODES, "other_brand", "unknown")
SEES_STORES: Mapping[str, frozenset[str]] = {
    "hq_admin": frozenset(STORE_CODES),
    "hq_operator": frozenset(STORE_CODES),
    "agent_manager": frozenset({"A1", "A2"}),
    "store_manager": frozenset({"A1"}),
    "guide": frozenset({"A1"}),  # the guide's own store
    "other_brand_admin": frozenset({"other_brand"}),
}
# Earning, redeeming, holds and refunds also happen at a store. The AWAY targets are members the scoped
# callers see (of A1, of D1) doing that at agent B's store B1, where only brand-wide callers may act: an
# agent manager at its agent's stores, a store manager and a store key at their own store.
POINTS_TARGETS = (*MEMBER_TARGETS, *AWAY)
BRAND_WIDE = frozenset({"hq_admin", "hq_operator", "pos_key"})
SEES_AWAY: Mapping[str, frozenset[str]] = {
    caller: seen | (frozenset(AWAY) if caller in BRAND_WIDE else frozenset())
    for caller, seen in SEES_MEMBERS.items()
}

SEES_OWN_BRAND: Mapping[str, frozenset[str]] = {
    **{caller: frozenset({"own"}) for caller in AUTHENTICATED - {"other_brand_admin"}},
    "other_brand_admin": frozenset({"other_brand"}),
}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    allowed: frozenset[str]  # callers holding the right it needs
    success: int
    call: Callable[[World, str, str, bool], httpx.Response]
    targets: tuple[str, ...] = ("-",)
    sees: Mapping[str, frozenset[str]] | None = None  # None: no object, or none to scope
    filters: bool = False  # out-of-scope objects are left out of a 200, not answered with 404
    public: bool = False

    def expected(self, caller: str, target: str) -> int:
        if self.public:
            return self.success
        if caller in UNAUTHENTICATED:
            return 401
        if caller not in self.allowed:
            return 403
        if self.sees is not None and not self.filters and target not in self.sees.get(caller, frozenset()):
            return 404
        return self.success


# --- helpers -----------------------------------------------------------------------------------


def brand_and_label(w: World, target: str) -> tuple[Brand, str]:
    """A member target's brand and its label in ``MEMBERS`` ("other_brand" is brand 2's a1_guide)."""
    return (w.b2, "a1_guide") if target == "other_brand" else (w.b1, target)


def target_member_id(w: World, target: str) -> str:
    if target == "unknown":
        return UNKNOWN_MEMBER
    brand, label = brand_and_label(w, target)
    return brand.members[label]


def fresh_like(w: World, target: str) -> str:
    """A new member with the same home store and guide as the target: for calls that change it."""
    brand, label = brand_and_label(w, target)
    store, guide, _, _ = MEMBERS[label]
    return w.fresh_member(brand, store=store, guide=guide)


def masked(phone: str) -> str:
    return f"{phone[:3]}****{phone[-4:]}"


def target_store_id(w: World, target: str) -> str:
    if target == "unknown":
        return UNKNOWN_STORE
    return w.b2.stores["A1"] if target == "other_brand" else w.b1.stores[target]


def target_batch_id(w: World, target: str) -> str:
    return {"own": w.b1.batch_id, "other_brand": w.b2.batch_id}.get(target, UNKNOWN_BATCH)


def own_codes(caller: str, table: Mapping[str, frozenset[str]]) -> list[str]:
    """Codes visible to the caller in its own brand (brand 2's admin sees all of brand 2)."""
    return sorted(table.get(caller, frozenset()) if caller != "other_brand_admin" else STORE_CODES)


# --- points ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shopper:
    brand: Brand
    member_id: str
    home: str | None  # the member's home store (a code; None: registered online)
    store: str | None  # where the target earns, spends, holds or buys (None: the mini-program)

    @property
    def channel(self) -> str:
        return "pos" if self.store else "miniprogram"

    def store_id(self) -> str | None:
        return self.brand.stores[self.store] if self.store else None


def shopper(w: World, target: str) -> Shopper:
    """The member a points target names, and where it shops (an unknown member at A1)."""
    if target == "unknown":
        return Shopper(w.b1, UNKNOWN_MEMBER, "A1", "A1")
    if target in AWAY:
        return Shopper(w.b1, w.b1.away[target], AWAY[target], "B1")
    brand, label = brand_and_label(w, target)
    store = MEMBERS[label][0]
    return Shopper(brand, brand.members[label], store, store)


def fresh_shopper(w: World, target: str) -> Shopper:
    """A new member like the target's (same brand, home store and guide), shopping where it shops."""
    if target in AWAY:
        return Shopper(w.b1, w.fresh_member(w.b1, store=AWAY[target]), AWAY[target], "B1")
    brand, label = brand_and_label(w, target)
    store = MEMBERS[label][0]
    return Shopper(brand, fresh_like(w, target), store, store)


def party(brand: Brand, store: str | None) -> str:
    """Who owns the points a store issues or honours, read off the organisation by hand: agent A for A1
    and A2, agent B for B1, HQ for the direct store, the counter and online."""
    return {"A1": brand.agent_a, "A2": brand.agent_a, "B1": brand.agent_b}.get(store or "", "hq")


def write(w: World, caller: str) -> dict[str, str]:
    return {**w.auth(caller), "Idempotency-Key": f"matrix-{w.fresh_card()}"}


def label(w: World, caller: str) -> str:
    """The caller as the services record it (``Principal.label``)."""
    if caller in ("pos_key", "store_key"):
        return f"api_key:{w.b1.key_ids[caller]}"
    role = "hq_admin" if caller == "other_brand_admin" else caller
    return f"user:{w.brand_of(caller).users[role]}"
