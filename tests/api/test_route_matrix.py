"""Who may call what: every route of the app × every kind of caller (× the object it names) → one status.

The table below is the specification, written by hand from the roles in ARCHITECTURE.md and
``tenancy/rules.py``, not derived from the code under test:

* no token or a bad token → 401 (with ``WWW-Authenticate: Bearer``);
* a caller without the right the endpoint needs → 403, whatever the object;
* a caller with the right, naming an object it may not see → 404, exactly as for an object that does
  not exist: another brand's object, a member outside an agent's stores, outside a store manager's
  store, not a guide's own, outside a store key's store; and for points, a store (a sale's, a
  redemption's, a hold's) where a caller bound to stores may not act: an agent manager acts at its
  agent's stores, a store manager and a store key at their own store; for coupons, a coupon (named by
  its code) or a coupon redemption of a member the caller may not see, and, as for points, a store (a
  validation's, a redemption's) where a caller bound to stores may not act;
* otherwise the endpoint's success status, with the exact objects in the body.

Every failing cell also checks that nothing was written (row counts of every table a request could
touch, the newest member change, orders by status, the points left in lots and the member accounts'
running totals, the coupons by status, their redemptions and budgets, the upload folder).
``test_every_route_is_in_the_table`` fails when the app gains a route this table does not cover.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from datong.coupons.codes import ALPHABET, BadCode, normalize_code
from datong.coupons.models import Coupon, CouponRedemption
from tests.api.conftest import (
    AWAY,
    CALLERS,
    CARD_SOURCE,
    COUPON_TEMPLATE,
    FEN_PER_POINT,
    MEMBERS,
    POINTS_PROGRAM,
    ROLES,
    SETTLEMENT_PERIOD,
    STORE_CODES,
    WORLD_COUPON_ORDER_FEN,
    WORLD_HOLD,
    WORLD_ORDER_FEN,
    Brand,
    World,
    a_year_on,
    instant,
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


def _well_formed(body: str) -> str:
    """``body`` with the check character that makes it a valid coupon code."""
    for check in ALPHABET:
        try:
            return normalize_code(body + check)
        except BadCode:
            continue
    raise AssertionError(body)


UNKNOWN_CODE = _well_formed("000000000000")  # a valid code that no coupon has

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


def _brand_and_label(w: World, target: str) -> tuple[Brand, str]:
    """A member target's brand and its label in ``MEMBERS`` ("other_brand" is brand 2's a1_guide)."""
    return (w.b2, "a1_guide") if target == "other_brand" else (w.b1, target)


def _member_id(w: World, target: str) -> str:
    if target == "unknown":
        return UNKNOWN_MEMBER
    brand, label = _brand_and_label(w, target)
    return brand.members[label]


def _fresh_like(w: World, target: str) -> str:
    """A new member with the same home store and guide as the target: for calls that change it."""
    brand, label = _brand_and_label(w, target)
    store, guide, _, _ = MEMBERS[label]
    return w.fresh_member(brand, store=store, guide=guide)


def _masked(phone: str) -> str:
    return f"{phone[:3]}****{phone[-4:]}"


def _store_id(w: World, target: str) -> str:
    if target == "unknown":
        return UNKNOWN_STORE
    return w.b2.stores["A1"] if target == "other_brand" else w.b1.stores[target]


def _batch_id(w: World, target: str) -> str:
    return {"own": w.b1.batch_id, "other_brand": w.b2.batch_id}.get(target, UNKNOWN_BATCH)


def _own_codes(caller: str, table: Mapping[str, frozenset[str]]) -> list[str]:
    """Codes visible to the caller in its own brand (brand 2's admin sees all of brand 2)."""
    return sorted(table.get(caller, frozenset()) if caller != "other_brand_admin" else STORE_CODES)


# --- one function per route: make the call; when it should succeed, prepare and check -------------


def call_public(path: str) -> Callable[[World, str, str, bool], httpx.Response]:
    def call(w: World, caller: str, _: str, ok: bool) -> httpx.Response:
        response: httpx.Response = w.client.get(path, headers=w.auth(caller))
        if ok and path == "/healthz":
            assert response.json()["status"] == "ok"
        if ok and path == "/openapi.json":
            assert "/api/v1/members/{member_id}" in response.json()["paths"]
        return response

    return call


def call_login(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    brand = w.brand_of(caller)
    role = "hq_admin" if caller == "other_brand_admin" else caller
    body: dict[str, str]
    if target == "unknown_user":
        body = {"tenant": w.b1.code, "username": "nobody", "password": "whatever-password"}
    elif target == "missing_password":
        body = {"tenant": w.b1.code, "username": w.b1.usernames["hq_admin"]}
    else:
        body = {
            "tenant": {"other_brand_code": (w.b2 if brand is w.b1 else w.b1).code}.get(target, brand.code),
            "username": brand.usernames[role],
            "password": brand.passwords[role] + ("x" if target == "wrong_password" else ""),
        }
    response: httpx.Response = w.client.post("/api/v1/auth/login", json=body)
    if ok:
        answer = response.json()
        assert (answer["user_id"], answer["role"]) == (brand.users[role], role)
        me = w.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {answer['token']}"})
        assert me.json()["id"] == brand.users[role]
    elif target == "missing_password":
        assert response.json()["field"] == "password"
    return response


def call_me(w: World, caller: str, _: str, ok: bool) -> httpx.Response:
    response: httpx.Response = w.client.get("/api/v1/auth/me", headers=w.auth(caller))
    if ok:
        brand = w.brand_of(caller)
        body = response.json()
        assert body["tenant_id"] == brand.tenant_id
        if caller in ("pos_key", "store_key"):
            assert (body["kind"], body["id"], body["role"]) == ("api_key", brand.key_ids[caller], None)
            assert body["permissions"] == [
                "coupons:read",
                "coupons:write",
                "members:read",
                "members:write",
                "points:read",
                "points:write",
            ]
            assert body["store_id"] == (brand.stores["D1"] if caller == "store_key" else None)
        else:
            role = "hq_admin" if caller == "other_brand_admin" else caller
            assert (body["kind"], body["id"], body["role"]) == ("user", brand.users[role], role)
            assert body["agent_id"] == (brand.agents["AGA"] if role == "agent_manager" else None)
            assert body["store_id"] == (brand.stores["A1"] if role == "store_manager" else None)
            assert body["guide_id"] == (brand.guides["G1"] if role == "guide" else None)
    return response


def call_register(w: World, caller: str, _: str, ok: bool) -> httpx.Response:
    phone, card = w.fresh_phone(), w.fresh_card()
    body = {"source": CARD_SOURCE, "card_no": card, "phone": phone, "name": w.fresh_name()}
    headers = {**w.auth(caller), "Idempotency-Key": f"matrix-{caller}-{card}"}
    response: httpx.Response = w.client.post("/api/v1/members/register", json=body, headers=headers)
    if ok:
        answer = response.json()
        assert answer["created"] is True
        member = w.member(answer["member_id"])
        assert (member.tenant_id, member.status) == (w.brand_of(caller).tenant_id, "active")
    return response


def call_lookup(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    phone = UNKNOWN_PHONE if target == "unknown" else MEMBERS[target][3]
    response: httpx.Response = w.client.get(
        "/api/v1/members/lookup", params={"kind": "phone", "value": phone}, headers=w.auth(caller)
    )
    if ok:
        brand = w.brand_of(caller)
        visible = target in LOOKUP_SEES.get(caller, frozenset())
        expected = [brand.members[target]] if visible else []
        assert [m["id"] for m in response.json()] == expected
        if visible:
            assert response.json()[0]["name"] == MEMBERS[target][2][0] + "*" * (len(MEMBERS[target][2]) - 1)
    return response


def call_view(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    member_id = _member_id(w, target)
    response: httpx.Response = w.client.get(f"/api/v1/members/{member_id}", headers=w.auth(caller))
    if ok:
        body = response.json()
        _, label = _brand_and_label(w, target)
        assert (body["id"], body["status"], body["unmasked"]) == (member_id, "active", False)
        assert body["golden"]["phone"] == _masked(MEMBERS[label][3])
    return response


def call_explain(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    member_id = _member_id(w, target)
    response: httpx.Response = w.client.get(f"/api/v1/members/{member_id}/explain", headers=w.auth(caller))
    if ok:
        body = response.json()
        assert (body["member_id"], body["status"], body["merges"]) == (member_id, "active", [])
        assert len(body["records"]) == 1
    return response


def call_consent(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    member_id = _member_id(w, target)
    body = {"purpose": "marketing_sms", "granted": True, "text_version": "2024-01"}
    response: httpx.Response = w.client.post(
        f"/api/v1/members/{member_id}/consents", json=body, headers=w.auth(caller)
    )
    if ok:
        answer = response.json()
        assert (answer["purpose"], answer["granted"]) == ("marketing_sms", True)
        brand, _ = _brand_and_label(w, target)
        assert w.audit_actions(brand.tenant_id, member_id)[-1] == "consent.grant"
    return response


def call_export(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    member_id = _member_id(w, target)
    response: httpx.Response = w.client.get(f"/api/v1/members/{member_id}/export", headers=w.auth(caller))
    if ok:
        body = response.json()
        assert body["id"] == member_id
        assert [r["source"] for r in body["records"]] == [
            "miniprogram" if target == "online" else CARD_SOURCE
        ]
        brand, _ = _brand_and_label(w, target)
        assert w.audit_actions(brand.tenant_id, member_id)[-1] == "member.export"
    return response


def call_delete(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    member_id = _fresh_like(w, target) if ok else _member_id(w, target)
    response: httpx.Response = w.client.post(
        f"/api/v1/members/{member_id}/delete", json={"reason": "PIPL request"}, headers=w.auth(caller)
    )
    if ok:
        assert response.json() == {"member_id": member_id, "status": "deleted"}
        assert w.member(member_id).status == "deleted"
    return response


def call_merge(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    brand = w.b2 if target == "other_brand_pair" else w.b1
    if ok:
        survivor, absorbed = w.fresh_member(brand), w.fresh_member(brand)
    else:
        survivor = UNKNOWN_MEMBER if target == "unknown" else brand.members["a1"]
        absorbed = brand.members["a2"]
    body = {"survivor_id": survivor, "absorbed_id": absorbed, "reason": "the same person"}
    response: httpx.Response = w.client.post("/api/v1/members/merge", json=body, headers=w.auth(caller))
    if ok:
        answer = response.json()
        assert (answer["survivor_id"], answer["absorbed_id"]) == (survivor, absorbed)
        assert (w.member(absorbed).status, w.member(absorbed).merged_into_id) == ("merged", survivor)
    return response


def call_undo(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    brand = w.b2 if target == "other_brand_merge" else w.b1
    merge_id = UNKNOWN_MERGE if target == "unknown" else brand.merge_id
    if ok:
        merge_id = w.fresh_merge(brand)
    response: httpx.Response = w.client.post(
        f"/api/v1/members/merges/{merge_id}/undo", json={"reason": "two people"}, headers=w.auth(caller)
    )
    if ok:
        answer = response.json()
        assert answer["merge_id"] == merge_id
        assert w.member(answer["restored_member_id"]).status == "active"
    return response


def call_upload(w: World, caller: str, _: str, ok: bool) -> httpx.Response:
    card, phone, name = w.fresh_card(), w.fresh_phone(), w.fresh_name()
    content = f"会员卡号,姓名,手机号\n{card},{name},{phone}\n".encode()
    response: httpx.Response = w.client.post(
        "/api/v1/imports",
        data={"kind": "members", "source": "pos_upload"},
        files={"file": (f"{card}.csv", content, "text/csv")},
        headers=w.auth(caller),
    )
    if ok:
        w.wait_for_imports()
        batch = w.client.get(f"/api/v1/imports/{response.json()['id']}", headers=w.auth(caller)).json()
        assert (batch["status"], batch["rows_ok"], batch["members_created"]) == ("done", 1, 1)
    return response


def call_imports(w: World, caller: str, _: str, ok: bool) -> httpx.Response:
    response: httpx.Response = w.client.get("/api/v1/imports", headers=w.auth(caller))
    if ok:
        brand = w.brand_of(caller)
        ids = [b["id"] for b in response.json()]
        assert brand.batch_id in ids
        assert w.b2.batch_id not in ids if brand is w.b1 else w.b1.batch_id not in ids
    return response


def call_import(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    batch_id = _batch_id(w, target)
    response: httpx.Response = w.client.get(f"/api/v1/imports/{batch_id}", headers=w.auth(caller))
    if ok:
        body = response.json()
        assert (body["id"], body["status"], body["rows_failed"]) == (batch_id, "done", 1)
    return response


def call_import_errors(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    batch_id = _batch_id(w, target)
    response: httpx.Response = w.client.get(f"/api/v1/imports/{batch_id}/errors", headers=w.auth(caller))
    if ok:
        rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
        assert [r[:3] for r in rows] == [
            ["row_no", "field", "reason"],
            ["1", "手机号", "not a mainland mobile or international number"],
        ]
        assert w.audit_actions(w.brand_of(caller).tenant_id, batch_id)[-1] == "import.errors_export"
    return response


def call_stores(w: World, caller: str, _: str, ok: bool) -> httpx.Response:
    response: httpx.Response = w.client.get("/api/v1/org/stores", headers=w.auth(caller))
    if ok:
        brand = w.brand_of(caller)
        expected = [brand.stores[c] for c in _own_codes(caller, SEES_STORES)]
        assert [s["id"] for s in response.json()] == expected
    return response


def call_store(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    store_id = _store_id(w, target)
    response: httpx.Response = w.client.get(f"/api/v1/org/stores/{store_id}", headers=w.auth(caller))
    if ok:
        assert response.json()["id"] == store_id
    return response


def call_agents(w: World, caller: str, _: str, ok: bool) -> httpx.Response:
    response: httpx.Response = w.client.get("/api/v1/org/agents", headers=w.auth(caller))
    if ok:
        brand = w.brand_of(caller)
        codes = {"agent_manager": ["AGA"], "store_manager": [], "guide": []}.get(caller, ["AGA", "AGB"])
        assert [a["id"] for a in response.json()] == [brand.agents[c] for c in codes]
    return response


def call_regions(w: World, caller: str, _: str, ok: bool) -> httpx.Response:
    response: httpx.Response = w.client.get("/api/v1/org/regions", headers=w.auth(caller))
    if ok:
        brand = w.brand_of(caller)
        assert [r["id"] for r in response.json()] == [brand.regions["EAST"], brand.regions["SOUTH"]]
    return response


def call_guides(w: World, caller: str, _: str, ok: bool) -> httpx.Response:
    response: httpx.Response = w.client.get("/api/v1/org/guides", headers=w.auth(caller))
    if ok:
        brand = w.brand_of(caller)
        codes = ["G1"] if caller == "guide" else ["G1", "G2"]
        assert [g["id"] for g in response.json()] == [brand.guides[c] for c in codes]
    return response


def call_audit(w: World, caller: str, _: str, ok: bool) -> httpx.Response:
    member_id = w.b1.members["a1"]
    response: httpx.Response = w.client.get(
        "/api/v1/audit", params={"object_id": member_id}, headers=w.auth(caller)
    )
    if ok:
        brand = w.brand_of(caller)
        expected = sorted(w.audit_actions(brand.tenant_id, member_id))
        assert sorted(e["action"] for e in response.json()) == expected
        assert (len(expected) > 0) == (brand is w.b1)  # brand 2 sees none of brand 1's trail
    return response


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


def _shopper(w: World, target: str) -> Shopper:
    """The member a points target names, and where it shops (an unknown member at A1)."""
    if target == "unknown":
        return Shopper(w.b1, UNKNOWN_MEMBER, "A1", "A1")
    if target in AWAY:
        return Shopper(w.b1, w.b1.away[target], AWAY[target], "B1")
    brand, label = _brand_and_label(w, target)
    store = MEMBERS[label][0]
    return Shopper(brand, brand.members[label], store, store)


def _fresh_shopper(w: World, target: str) -> Shopper:
    """A new member like the target's (same brand, home store and guide), shopping where it shops."""
    if target in AWAY:
        return Shopper(w.b1, w.fresh_member(w.b1, store=AWAY[target]), AWAY[target], "B1")
    brand, label = _brand_and_label(w, target)
    store = MEMBERS[label][0]
    return Shopper(brand, _fresh_like(w, target), store, store)


def _party(brand: Brand, store: str | None) -> str:
    """Who owns the points a store issues or honours, read off the organisation by hand: agent A for A1
    and A2, agent B for B1, HQ for the direct store, the counter and online."""
    return {"A1": brand.agent_a, "A2": brand.agent_a, "B1": brand.agent_b}.get(store or "", "hq")


def _write(w: World, caller: str) -> dict[str, str]:
    return {**w.auth(caller), "Idempotency-Key": f"matrix-{w.fresh_card()}"}


def call_points_summary(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    who = _shopper(w, target)
    response: httpx.Response = w.client.get(f"/api/v1/points/members/{who.member_id}", headers=w.auth(caller))
    if ok:
        body = response.json()
        at, balance = who.brand.points_at, who.brand.start_balance()
        assert at is not None
        expiring = [(instant(e["expires_at"]), e["points"]) for e in body.pop("expiring")]
        assert expiring == [(a_year_on(at), balance)]
        assert instant(body.pop("tier_since")) == at
        assert body == {
            "member_id": who.member_id,
            "program": POINTS_PROGRAM["code"],
            "balance": balance,
            "value_fen": balance * FEN_PER_POINT,
            "held": WORLD_HOLD,
            "tier": "silver",
            "qualifying_value": WORLD_ORDER_FEN // 100,
            "tier_basis": "points",
        }
    return response


def call_points_history(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    who = _shopper(w, target)
    response: httpx.Response = w.client.get(
        f"/api/v1/points/members/{who.member_id}/history", headers=w.auth(caller)
    )
    if ok:
        body = response.json()
        brand, at = who.brand, who.brand.points_at
        label = _brand_and_label(w, target)[1]
        order_id = w.order(brand, who.channel, brand.orders[label]).id
        moves = sorted(
            (m["code"], m["kind"], m["points"], m["operation_id"] == brand.holds[label], m["order_id"])
            for m in body["transfers"]
        )
        assert moves == [
            ("earn_purchase", "posted", WORLD_ORDER_FEN // 100, False, order_id),
            ("redeem", "pending", -WORLD_HOLD, True, None),
        ]
        assert {(m["store_id"], instant(m["at"])) for m in body["transfers"]} == {(who.store_id(), at)}
        assert body["member_id"] == who.member_id
        tiers = body["tiers"]
        assert [instant(c.pop("at")) for c in tiers] == [at]
        assert tiers == [
            {"from": None, "to": "silver", "reason": "upgrade", "qualifying_value": WORLD_ORDER_FEN // 100}
        ]
    return response


def call_points_earn(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    who = _fresh_shopper(w, target) if ok else _shopper(w, target)
    order_no = f"E-{w.fresh_card()}"
    order = {
        "channel": who.channel,
        "order_no": order_no,
        "store_code": who.store,
        "total_fen": 12000,
        "paid_fen": 12000,
    }
    response: httpx.Response = w.client.post(
        "/api/v1/points/earn", json={"member_id": who.member_id, "order": order}, headers=_write(w, caller)
    )
    if ok:
        saved = w.order(who.brand, who.channel, order_no)
        assert (saved.member_id, saved.store_id, saved.status) == (who.member_id, who.store_id(), "completed")
        moves = w.moves(who.member_id)
        assert [(m.code, m.amount, m.order_id) for m in moves] == [("earn_purchase", 120, saved.id)]
        assert response.json() == {
            "order_id": saved.id,
            "points": 120,
            "earned_now": True,
            "transfer_ids": [moves[0].id],
            "rules": [],
            "note": None,
            "balance": 120,
        }
    return response


def call_points_redeem(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    who = _fresh_shopper(w, target) if ok else _shopper(w, target)
    if ok:  # 100 points earned at home
        w.earn(who.brand, who.member_id, f"H-{w.fresh_card()}", 10000, store=who.home)
    body = {"member_id": who.member_id, "points": 30, "channel": who.channel, "store_code": who.store}
    response: httpx.Response = w.client.post("/api/v1/points/redeem", json=body, headers=_write(w, caller))
    if ok:
        spent = [m for m in w.moves(who.member_id) if m.code == "redeem"]
        assert [(m.kind, m.amount, m.store_id) for m in spent] == [("posted", 30, who.store_id())]
        assert response.json() == {
            "id": spent[0].operation_id,
            "status": "posted",
            "points": 30,
            "value_fen": 30 * FEN_PER_POINT,
            "hold_expires_at": None,
            "transfer_ids": [spent[0].id],
            "issuers": {_party(who.brand, who.home): 30},
            "balance": 70,
        }
    return response


def call_points_hold(action: str) -> Callable[[World, str, str, bool], httpx.Response]:
    """Confirm or void a hold: the target member's open hold (held at the store the target shops at)."""
    post = action == "confirm"

    def call(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
        if ok:
            who = _fresh_shopper(w, target)
            w.earn(who.brand, who.member_id, f"H-{w.fresh_card()}", 10000, store=who.home)
            hold_id = w.redeem(who.brand, who.member_id, 10, store=who.store, hold=True).id
        elif target == "unknown":
            hold_id = UNKNOWN_HOLD
        else:
            brand, label = (w.b1, target) if target in AWAY else _brand_and_label(w, target)
            hold_id = brand.holds[label]
        response: httpx.Response = w.client.post(
            f"/api/v1/points/holds/{hold_id}/{action}", json={}, headers=_write(w, caller)
        )
        if ok:
            held = [m for m in w.moves(who.member_id) if m.code == "redeem"]
            assert [(m.kind, m.amount, m.operation_id) for m in held] == [
                ("pending", 10, hold_id),
                ("post_pending" if post else "void_pending", 10, hold_id),
            ]
            assert response.json() == {
                "id": hold_id,
                "status": "posted" if post else "voided",
                "points": 10,
                "value_fen": 10 * FEN_PER_POINT,
                "hold_expires_at": None,
                "transfer_ids": [held[0].id],
                "issuers": {_party(who.brand, who.home): 10},
                "balance": 90 if post else 100,
            }
        return response

    return call


def call_points_refund(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    if ok:  # a new member's sale of 120 yuan where the target shops, refunded in full
        who = _fresh_shopper(w, target)
        order_no, amount = f"F-{w.fresh_card()}", 12000
        assert w.earn(who.brand, who.member_id, order_no, amount, store=who.store).points == 120
    else:  # the target's own sale in the world, refunded in part
        who = _shopper(w, target)
        order_no, amount = ("W-nobody" if target == "unknown" else _world_order(w, target)), 1000
    body = {
        "channel": who.channel,
        "order_no": order_no,
        "refund_no": f"RF-{w.fresh_card()}",
        "amount_fen": amount,
    }
    response: httpx.Response = w.client.post("/api/v1/points/refund", json=body, headers=_write(w, caller))
    if ok:
        order = w.order(who.brand, who.channel, order_no)
        refunds = w.refunds(order.id)
        assert [(r.refund_no, r.amount_fen) for r in refunds] == [(body["refund_no"], amount)]
        back = [m for m in w.moves(who.member_id) if m.code == "clawback"]
        assert [(m.amount, m.order_id, m.external_ref) for m in back] == [(120, order.id, refunds[0].id)]
        assert response.json() == {
            "refund_id": refunds[0].id,
            "clawed_back": 120,
            "given_back": 0,
            "shortfall": 0,
            "transfer_ids": [back[0].id],
            "order_status": "refunded",
            "balance": 0,
        }
    return response


def _world_order(w: World, target: str) -> str:
    if target in AWAY:
        return w.b1.orders[target]
    brand, label = _brand_and_label(w, target)
    return brand.orders[label]


def call_points_adjust(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    member_id = _fresh_like(w, target) if ok else _member_id(w, target)
    body = {"member_id": member_id, "points": 25, "reason": "补录门店活动积分"}
    response: httpx.Response = w.client.post("/api/v1/points/adjust", json=body, headers=_write(w, caller))
    if ok:
        moves = w.moves(member_id)
        assert [(m.code, m.amount, m.reason) for m in moves] == [("adjust", 25, "补录门店活动积分")]
        assert response.json() == {
            "operation_id": moves[0].operation_id,
            "points": 25,
            "transfer_ids": [moves[0].id],
            "balance": 25,
        }
        brand, _ = _brand_and_label(w, target)
        assert w.audit_actions(brand.tenant_id, member_id)[-1] == "points.adjust"
    return response


def call_points_settlement(w: World, caller: str, _: str, ok: bool) -> httpx.Response:
    response: httpx.Response = w.client.get(
        "/api/v1/points/settlement", params={"period": SETTLEMENT_PERIOD}, headers=w.auth(caller)
    )
    if ok:
        brand = w.brand_of(caller)
        spent = brand.settlement_redemptions
        # Agent A's points were honoured by agent B (30) and by HQ (80); those it honoured itself are no debt.
        assert response.json() == {
            "period": SETTLEMENT_PERIOD,
            "fen_per_point": FEN_PER_POINT,
            "obligations": [
                {
                    "debtor": brand.agent_a,
                    "creditor": brand.agent_b,
                    "points": 30,
                    "transfer_ids": spent["B1"],
                    "amount_fen": 30 * FEN_PER_POINT,
                },
                {
                    "debtor": brand.agent_a,
                    "creditor": "hq",
                    "points": 80,
                    "transfer_ids": spent["D1"],
                    "amount_fen": 80 * FEN_PER_POINT,
                },
            ],
            "net": [
                {"debtor": brand.agent_a, "creditor": brand.agent_b, "amount_fen": 30 * FEN_PER_POINT},
                {"debtor": brand.agent_a, "creditor": "hq", "amount_fen": 80 * FEN_PER_POINT},
            ],
        }
    return response


# --- coupons --------------------------------------------------------------------------------------


def _coupon_shopper(w: World, target: str) -> Shopper:
    """As ``_shopper``: the member a coupon target names and where it shops (an unknown one at A1)."""
    return _shopper(w, target)


def _world_coupon(w: World, target: str) -> str:
    """The target's unused coupon in the world (a code no coupon has for "unknown")."""
    if target == "unknown":
        return UNKNOWN_CODE
    if target in AWAY:
        return w.b1.coupons[target]
    brand, label = _brand_and_label(w, target)
    return brand.coupons[label]


def _world_redemption(w: World, target: str) -> str:
    if target == "unknown":
        return UNKNOWN_REDEMPTION
    if target in AWAY:
        return w.b1.coupon_redemptions[target]
    brand, label = _brand_and_label(w, target)
    return brand.coupon_redemptions[label]


def _coupon_view(coupon_id: str, code: str, member_id: str, status: str) -> dict[str, object]:
    """A coupon of the world's template as the API shows it, less its times."""
    return {
        "id": coupon_id,
        "code": code,
        "display_code": f"{code[:4]}-{code[4:8]}-{code[8:12]}-{code[12:]}",
        "template": COUPON_TEMPLATE["code"],
        "name": COUPON_TEMPLATE["name"],
        "kind": "cash_off",
        "member_id": member_id,
        "status": status,
    }


def _basket_lines() -> list[dict[str, object]]:
    """Two tops of 25 yuan: WORLD_COUPON_ORDER_FEN."""
    return [
        {"sku": "SKU-M", "category": "tops", "quantity": 2, "unit_price_fen": WORLD_COUPON_ORDER_FEN // 2}
    ]


def call_coupon_template(w: World, caller: str, _: str, ok: bool) -> httpx.Response:
    code = f"T-{w.fresh_card()}"
    body = {
        "code": code,
        "name": "满200减30",
        "kind": "threshold",
        "threshold_fen": 20000,
        "amount_fen": 3000,
        "valid_days": 30,
        "store_codes": ["A2", "A1"],
        "total_quantity": 100,
    }
    response: httpx.Response = w.client.post("/api/v1/coupons/templates", json=body, headers=w.auth(caller))
    if ok:
        brand = w.brand_of(caller)
        answer = response.json()
        assert answer == {
            "id": answer["id"],
            "code": code,
            "name": "满200减30",
            "kind": "threshold",
            "amount_fen": 3000,
            "threshold_fen": 20000,
            "rate_pct": 100,
            "cap_fen": None,
            "sku": None,
            "price_fen": 0,
            "online": True,
            "offline": True,
            "store_codes": ["A1", "A2"],
            "skus": [],
            "categories": [],
            "exclusive": False,
            "with_points": True,
            "one_per_category": False,
            "valid_from": None,
            "valid_until": None,
            "valid_days": 30,
            "total_quantity": 100,
            "issued_count": 0,
            "per_member_limit": None,
            "restore_on_refund": True,
            "active": True,
        }
        assert w.audit_actions(brand.tenant_id, answer["id"]) == ["coupon.template_create"]
    return response


def call_coupon_issue(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    member_id = _fresh_like(w, target) if ok else _member_id(w, target)
    body = {"member_id": member_id, "template": COUPON_TEMPLATE["code"], "issue_key": f"m-{w.fresh_card()}"}
    response: httpx.Response = w.client.post("/api/v1/coupons/issue", json=body, headers=_write(w, caller))
    if ok:
        [coupon] = w.coupons_of(member_id)
        assert (coupon.status, coupon.source, coupon.issue_key) == ("issued", "api", body["issue_key"])
        answer = response.json()
        times = [instant(answer.pop(k)) for k in ("issued_at", "valid_from", "valid_until")]
        assert times == [coupon.issued_at, coupon.issued_at, coupon.issued_at + timedelta(days=365)]
        assert answer == {
            **_coupon_view(coupon.id, coupon.code, member_id, "issued"),
            "redeemed_at": None,
            "created": True,
        }
    return response


def call_coupon_member(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    who = _coupon_shopper(w, target)
    response: httpx.Response = w.client.get(
        f"/api/v1/coupons/members/{who.member_id}", headers=w.auth(caller)
    )
    if ok:
        brand, at = who.brand, who.brand.coupons_at
        assert at is not None
        body = response.json()
        assert body["member_id"] == who.member_id
        coupons = sorted(body["coupons"], key=lambda c: str(c["status"]))
        unused = w.coupon_by_code(brand, _world_coupon(w, target))
        with w.db.reading() as s:
            used = s.get(CouponRedemption, _world_redemption(w, target))
            assert used is not None
            redeemed = s.get(Coupon, used.coupon_id)
            assert redeemed is not None
        for view in coupons:
            times = [instant(view.pop(k)) for k in ("issued_at", "valid_from", "valid_until")]
            assert times == [at, at, at + timedelta(days=365)]
        redeemed_at = [c.pop("redeemed_at") for c in coupons]
        assert (redeemed_at[0], instant(redeemed_at[1])) == (None, at)
        assert coupons == [
            _coupon_view(unused.id, unused.code, who.member_id, "issued"),
            _coupon_view(redeemed.id, redeemed.code, who.member_id, "redeemed"),
        ]
    return response


def call_coupon_validate(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    who = _coupon_shopper(w, target)
    code = _world_coupon(w, target)
    body = {
        "code": code.lower(),  # read leniently, as typed
        "channel": who.channel,
        "store_code": who.store,
        "lines": _basket_lines(),
    }
    before = w.counts() if ok else None
    response: httpx.Response = w.client.post("/api/v1/coupons/validate", json=body, headers=w.auth(caller))
    if ok:
        assert response.json() == {
            "coupon_id": w.coupon_by_code(who.brand, code).id,
            "code": code,
            "applies": True,
            "discount_fen": COUPON_TEMPLATE["amount_fen"],
            "reasons": [],
        }
        assert w.counts() == before, "validating changed something"
    return response


def call_coupon_redeem(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    if ok:
        who = _fresh_shopper(w, target)
        code = w.issue_coupon(who.brand, who.member_id).code
    else:
        who, code = _coupon_shopper(w, target), _world_coupon(w, target)
    order_no = f"CP-{w.fresh_card()}"
    body = {
        "code": code,
        "order_no": order_no,
        "channel": who.channel,
        "store_code": who.store,
        "lines": _basket_lines(),
    }
    response: httpx.Response = w.client.post("/api/v1/coupons/redeem", json=body, headers=_write(w, caller))
    if ok:
        coupon = w.coupon_by_code(who.brand, code)
        [r] = w.coupon_redemptions(coupon.id)
        assert (coupon.status, coupon.redeemed_at) == ("redeemed", r.at)
        assert (
            r.member_id,
            r.channel,
            r.order_no,
            r.store_id,
            r.discount_fen,
            r.order_fen,
            r.reversed_at,
        ) == (
            who.member_id,
            who.channel,
            order_no,
            who.store_id(),
            COUPON_TEMPLATE["amount_fen"],
            WORLD_COUPON_ORDER_FEN,
            None,
        )
        answer = response.json()
        assert instant(answer.pop("at")) == r.at
        assert answer == {
            "redemption_id": r.id,
            "coupon_id": coupon.id,
            "code": code,
            "member_id": who.member_id,
            "status": "redeemed",
            "discount_fen": COUPON_TEMPLATE["amount_fen"],
            "order_fen": WORLD_COUPON_ORDER_FEN,
            "channel": who.channel,
            "order_no": order_no,
            "store_id": who.store_id(),
        }
    return response


def call_coupon_reverse(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    if ok:
        who = _fresh_shopper(w, target)
        code = w.issue_coupon(who.brand, who.member_id).code
        redemption_id = w.redeem_coupon(who.brand, code, store=who.store).id
    else:
        redemption_id = _world_redemption(w, target)
    response: httpx.Response = w.client.post(
        f"/api/v1/coupons/redemptions/{redemption_id}/reverse", headers=_write(w, caller)
    )
    if ok:
        coupon = w.coupon_by_code(who.brand, code)
        [r] = w.coupon_redemptions(coupon.id)
        assert r.reversed_at is not None
        assert (coupon.status, coupon.redeemed_at, r.id) == ("issued", None, redemption_id)
        assert r.reversed_by == _label(w, caller)
        answer = response.json()
        assert instant(answer.pop("reversed_at")) == r.reversed_at
        assert answer == {"redemption_id": r.id, "coupon_id": coupon.id, "code": code, "status": "issued"}
    return response


def _label(w: World, caller: str) -> str:
    """The caller as the services record it (``Principal.label``)."""
    if caller in ("pos_key", "store_key"):
        return f"api_key:{w.b1.key_ids[caller]}"
    role = "hq_admin" if caller == "other_brand_admin" else caller
    return f"user:{w.brand_of(caller).users[role]}"


ENDPOINT_LIST = [
    Endpoint("GET", "/healthz", EVERYONE, 200, call_public("/healthz"), public=True),
    Endpoint("GET", "/openapi.json", EVERYONE, 200, call_public("/openapi.json"), public=True),
    Endpoint("GET", "/docs", EVERYONE, 200, call_public("/docs"), public=True),
    Endpoint(
        "GET", "/docs/oauth2-redirect", EVERYONE, 200, call_public("/docs/oauth2-redirect"), public=True
    ),
    Endpoint("GET", "/redoc", EVERYONE, 200, call_public("/redoc"), public=True),
    # Login takes credentials, not a token: the "caller" is whose credentials are posted.
    Endpoint(
        "POST",
        "/api/v1/auth/login",
        EVERYONE,
        200,
        call_login,
        targets=("own_password", "wrong_password", "other_brand_code", "unknown_user", "missing_password"),
    ),
    Endpoint("GET", "/api/v1/auth/me", AUTHENTICATED, 200, call_me),
    Endpoint("POST", "/api/v1/members/register", MEMBER_WRITERS, 201, call_register),
    Endpoint(
        "GET",
        "/api/v1/members/lookup",
        MEMBER_READERS,
        200,
        call_lookup,
        targets=(*MEMBERS, "unknown"),
        sees=LOOKUP_SEES,
        filters=True,
    ),
    Endpoint(
        "GET", "/api/v1/members/{member_id}", MEMBER_READERS, 200, call_view, MEMBER_TARGETS, SEES_MEMBERS
    ),
    Endpoint(
        "GET",
        "/api/v1/members/{member_id}/explain",
        MEMBER_READERS,
        200,
        call_explain,
        MEMBER_TARGETS,
        SEES_MEMBERS,
    ),
    Endpoint(
        "POST",
        "/api/v1/members/{member_id}/consents",
        MEMBER_WRITERS,
        201,
        call_consent,
        MEMBER_TARGETS,
        SEES_MEMBERS,
    ),
    Endpoint("GET", "/api/v1/members/{member_id}/export", HQ, 200, call_export, MEMBER_TARGETS, SEES_MEMBERS),
    Endpoint(
        "POST", "/api/v1/members/{member_id}/delete", ADMINS, 200, call_delete, MEMBER_TARGETS, SEES_MEMBERS
    ),
    Endpoint(
        "POST",
        "/api/v1/members/merge",
        HQ,
        200,
        call_merge,
        ("pair", "other_brand_pair", "unknown"),
        {
            "hq_admin": frozenset({"pair"}),
            "hq_operator": frozenset({"pair"}),
            "other_brand_admin": frozenset({"other_brand_pair"}),
        },
    ),
    Endpoint(
        "POST",
        "/api/v1/members/merges/{merge_id}/undo",
        HQ,
        200,
        call_undo,
        ("merge", "other_brand_merge", "unknown"),
        {
            "hq_admin": frozenset({"merge"}),
            "hq_operator": frozenset({"merge"}),
            "other_brand_admin": frozenset({"other_brand_merge"}),
        },
    ),
    Endpoint("POST", "/api/v1/imports", HQ, 202, call_upload),
    Endpoint("GET", "/api/v1/imports", HQ, 200, call_imports),
    Endpoint(
        "GET",
        "/api/v1/imports/{batch_id}",
        HQ,
        200,
        call_import,
        ("own", "other_brand", "unknown"),
        SEES_OWN_BRAND,
    ),
    Endpoint(
        "GET",
        "/api/v1/imports/{batch_id}/errors",
        HQ,
        200,
        call_import_errors,
        ("own", "other_brand", "unknown"),
        SEES_OWN_BRAND,
    ),
    Endpoint("GET", "/api/v1/org/stores", ORG_READERS, 200, call_stores),
    Endpoint(
        "GET", "/api/v1/org/stores/{store_id}", ORG_READERS, 200, call_store, STORE_TARGETS, SEES_STORES
    ),
    Endpoint("GET", "/api/v1/org/agents", ORG_READERS, 200, call_agents),
    Endpoint("GET", "/api/v1/org/regions", ORG_READERS, 200, call_regions),
    Endpoint("GET", "/api/v1/org/guides", ORG_READERS, 200, call_guides),
    Endpoint("GET", "/api/v1/audit", ADMINS, 200, call_audit),
    Endpoint(
        "GET",
        "/api/v1/points/members/{member_id}",
        POINTS_READERS,
        200,
        call_points_summary,
        MEMBER_TARGETS,
        SEES_MEMBERS,
    ),
    Endpoint(
        "GET",
        "/api/v1/points/members/{member_id}/history",
        POINTS_READERS,
        200,
        call_points_history,
        MEMBER_TARGETS,
        SEES_MEMBERS,
    ),
    Endpoint("POST", "/api/v1/points/earn", POINTS_WRITERS, 200, call_points_earn, POINTS_TARGETS, SEES_AWAY),
    Endpoint(
        "POST", "/api/v1/points/redeem", POINTS_WRITERS, 200, call_points_redeem, POINTS_TARGETS, SEES_AWAY
    ),
    Endpoint(
        "POST",
        "/api/v1/points/holds/{hold_id}/confirm",
        POINTS_WRITERS,
        200,
        call_points_hold("confirm"),
        POINTS_TARGETS,
        SEES_AWAY,
    ),
    Endpoint(
        "POST",
        "/api/v1/points/holds/{hold_id}/void",
        POINTS_WRITERS,
        200,
        call_points_hold("void"),
        POINTS_TARGETS,
        SEES_AWAY,
    ),
    Endpoint(
        "POST", "/api/v1/points/refund", POINTS_WRITERS, 200, call_points_refund, POINTS_TARGETS, SEES_AWAY
    ),
    Endpoint(
        "POST",
        "/api/v1/points/adjust",
        POINTS_ADJUSTERS,
        200,
        call_points_adjust,
        MEMBER_TARGETS,
        SEES_MEMBERS,
    ),
    Endpoint("GET", "/api/v1/points/settlement", POINTS_SETTLERS, 200, call_points_settlement),
    Endpoint("POST", "/api/v1/coupons/templates", COUPON_ADMINS, 201, call_coupon_template),
    Endpoint(
        "POST", "/api/v1/coupons/issue", COUPON_WRITERS, 200, call_coupon_issue, MEMBER_TARGETS, SEES_MEMBERS
    ),
    Endpoint(
        "GET",
        "/api/v1/coupons/members/{member_id}",
        COUPON_READERS,
        200,
        call_coupon_member,
        MEMBER_TARGETS,
        SEES_MEMBERS,
    ),
    Endpoint(
        "POST",
        "/api/v1/coupons/validate",
        COUPON_WRITERS,
        200,
        call_coupon_validate,
        POINTS_TARGETS,
        SEES_AWAY,
    ),
    Endpoint(
        "POST", "/api/v1/coupons/redeem", COUPON_WRITERS, 200, call_coupon_redeem, POINTS_TARGETS, SEES_AWAY
    ),
    Endpoint(
        "POST",
        "/api/v1/coupons/redemptions/{redemption_id}/reverse",
        COUPON_WRITERS,
        200,
        call_coupon_reverse,
        POINTS_TARGETS,
        SEES_AWAY,
    ),
]
ENDPOINTS = {(e.method, e.path): e for e in ENDPOINT_LIST}
assert len(ENDPOINTS) == len(ENDPOINT_LIST), "an endpoint is listed twice"

LOGIN_CALLERS = {
    # Whose credentials: each brand-1 user, and brand 2's admin; anyone may try an unknown user.
    "own_password": frozenset({*ROLES, "other_brand_admin"}),
    "wrong_password": frozenset({*ROLES, "other_brand_admin"}),
    "other_brand_code": frozenset({*ROLES, "other_brand_admin"}),
    "unknown_user": frozenset({"anonymous"}),
    "missing_password": frozenset({"anonymous"}),
}
LOGIN_EXPECTED = {
    "own_password": 200,
    "wrong_password": 401,
    "other_brand_code": 401,
    "unknown_user": 401,
    "missing_password": 422,
}


@dataclass(frozen=True)
class Cell:
    endpoint: Endpoint
    caller: str
    target: str
    expected: int

    @property
    def id(self) -> str:
        where = "" if self.target == "-" else f"@{self.target}"
        return f"{self.endpoint.method} {self.endpoint.path} {self.caller}{where}"


def _cells() -> list[Cell]:
    cells = []
    for endpoint in ENDPOINT_LIST:
        for caller in CALLERS:
            for target in endpoint.targets:
                if endpoint.path == "/api/v1/auth/login":
                    if caller in LOGIN_CALLERS[target]:
                        cells.append(Cell(endpoint, caller, target, LOGIN_EXPECTED[target]))
                    continue
                cells.append(Cell(endpoint, caller, target, endpoint.expected(caller, target)))
    return cells


CELLS = _cells()
ERROR_CODES = {401: "unauthenticated", 403: "forbidden", 404: "not_found", 422: "invalid"}


@pytest.mark.parametrize("cell", CELLS, ids=[cell.id for cell in CELLS])
def test_access(world: World, cell: Cell) -> None:
    ok = cell.expected < 400
    before = None if ok else world.counts()
    response = cell.endpoint.call(world, cell.caller, cell.target, ok)
    assert response.status_code == cell.expected, response.text
    if ok:
        return
    assert response.json()["code"] == ERROR_CODES[cell.expected]
    if cell.expected == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert world.counts() == before, "a refused request changed something"


def test_every_route_is_in_the_table(world: World) -> None:
    """A route added to the app without a row here fails this test (and a row for a removed route too)."""
    served: set[tuple[str, str]] = set()
    for route in iter_route_contexts(world.app.routes):
        methods = set(route.methods or ())
        if "GET" in methods:
            methods.discard("HEAD")  # Starlette answers HEAD wherever it answers GET
        served.update((method, str(route.path)) for method in methods)
    assert served == set(ENDPOINTS)
    documented = {
        (method.upper(), path)
        for path, operations in world.client.get("/openapi.json").json()["paths"].items()
        for method in operations
    }
    assert documented <= set(ENDPOINTS)
    for endpoint in ENDPOINT_LIST:
        covered = {c.caller for c in CELLS if c.endpoint is endpoint}
        assert covered == set(CALLERS) or endpoint.path == "/api/v1/auth/login", endpoint.path
