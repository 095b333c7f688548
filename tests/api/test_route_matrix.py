"""Who may call what: every route of the app × every kind of caller (× the object it names) → one status.

The table below is the specification, written by hand from the roles in ARCHITECTURE.md and
``tenancy/rules.py``, not derived from the code under test:

* no token or a bad token → 401 (with ``WWW-Authenticate: Bearer``);
* a caller without the right the endpoint needs → 403, whatever the object;
* a caller with the right, naming an object it may not see → 404, exactly as for an object that does
  not exist: another brand's object, a member outside an agent's stores, outside a store manager's
  store, not a guide's own, outside a store key's store;
* otherwise the endpoint's success status, with the exact objects in the body.

Every failing cell also checks that nothing was written (row counts of every table a request could
touch, the newest member change, the upload folder). ``test_every_route_is_in_the_table`` fails when
the app gains a route this table does not cover.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from tests.api.conftest import CALLERS, CARD_SOURCE, MEMBERS, ROLES, STORE_CODES, Brand, World

UNAUTHENTICATED = frozenset({"anonymous", "bad_token"})
EVERYONE = frozenset(CALLERS)
AUTHENTICATED = EVERYONE - UNAUTHENTICATED
# Who holds each right. Brand 2's administrator holds every right, in brand 2.
MEMBER_READERS = AUTHENTICATED  # every role and both keys: members:read
MEMBER_WRITERS = AUTHENTICATED - {"guide"}  # members:write
HQ = frozenset({"hq_admin", "hq_operator", "other_brand_admin"})  # merge, export, imports
ADMINS = frozenset({"hq_admin", "other_brand_admin"})  # delete, unmask, audit
ORG_READERS = frozenset({*ROLES, "other_brand_admin"})  # org:read (users only, not the keys)

UNKNOWN_MEMBER = "mem_00000000000000000000000000"
UNKNOWN_MERGE = "mrg_00000000000000000000000000"
UNKNOWN_BATCH = "imp_00000000000000000000000000"
UNKNOWN_STORE = "sto_00000000000000000000000000"
UNKNOWN_PHONE = "13600000000"

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
            assert body["permissions"] == ["members:read", "members:write"]
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


@pytest.mark.parametrize("cell", CELLS, ids=[c.id for c in CELLS])
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
