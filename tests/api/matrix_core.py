"""Route matrix rows: the public routes, login, members, imports, organisation and audit."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

import httpx

from tests.api.conftest import (
    CARD_SOURCE,
    MEMBERS,
    World,
)
from tests.api.matrix import (
    ADMINS,
    AUTHENTICATED,
    EVERYONE,
    HQ,
    LOOKUP_SEES,
    MEMBER_READERS,
    MEMBER_TARGETS,
    MEMBER_WRITERS,
    ORG_READERS,
    SEES_MEMBERS,
    SEES_OWN_BRAND,
    SEES_STORES,
    STORE_TARGETS,
    UNKNOWN_MEMBER,
    UNKNOWN_MERGE,
    UNKNOWN_PHONE,
    Endpoint,
    brand_and_label,
    fresh_like,
    masked,
    own_codes,
    target_batch_id,
    target_member_id,
    target_store_id,
)

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
    member_id = target_member_id(w, target)
    response: httpx.Response = w.client.get(f"/api/v1/members/{member_id}", headers=w.auth(caller))
    if ok:
        body = response.json()
        _, label = brand_and_label(w, target)
        assert (body["id"], body["status"], body["unmasked"]) == (member_id, "active", False)
        assert body["golden"]["phone"] == masked(MEMBERS[label][3])
    return response


def call_explain(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    member_id = target_member_id(w, target)
    response: httpx.Response = w.client.get(f"/api/v1/members/{member_id}/explain", headers=w.auth(caller))
    if ok:
        body = response.json()
        assert (body["member_id"], body["status"], body["merges"]) == (member_id, "active", [])
        assert len(body["records"]) == 1
    return response


def call_consent(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    member_id = target_member_id(w, target)
    body = {"purpose": "marketing_sms", "granted": True, "text_version": "2024-01"}
    response: httpx.Response = w.client.post(
        f"/api/v1/members/{member_id}/consents", json=body, headers=w.auth(caller)
    )
    if ok:
        answer = response.json()
        assert (answer["purpose"], answer["granted"]) == ("marketing_sms", True)
        brand, _ = brand_and_label(w, target)
        assert w.audit_actions(brand.tenant_id, member_id)[-1] == "consent.grant"
    return response


def call_export(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    member_id = target_member_id(w, target)
    response: httpx.Response = w.client.get(f"/api/v1/members/{member_id}/export", headers=w.auth(caller))
    if ok:
        body = response.json()
        assert body["id"] == member_id
        assert [r["source"] for r in body["records"]] == [
            "miniprogram" if target == "online" else CARD_SOURCE
        ]
        brand, _ = brand_and_label(w, target)
        assert w.audit_actions(brand.tenant_id, member_id)[-1] == "member.export"
    return response


def call_delete(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    member_id = fresh_like(w, target) if ok else target_member_id(w, target)
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
    batch_id = target_batch_id(w, target)
    response: httpx.Response = w.client.get(f"/api/v1/imports/{batch_id}", headers=w.auth(caller))
    if ok:
        body = response.json()
        assert (body["id"], body["status"], body["rows_failed"]) == (batch_id, "done", 1)
    return response


def call_import_errors(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    batch_id = target_batch_id(w, target)
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
        expected = [brand.stores[c] for c in own_codes(caller, SEES_STORES)]
        assert [s["id"] for s in response.json()] == expected
    return response


def call_store(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    store_id = target_store_id(w, target)
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


ENDPOINTS = [
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
