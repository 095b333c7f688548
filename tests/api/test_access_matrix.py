"""Every endpoint × every caller of two brands: who may do what to which object.

Another brand's objects and out-of-scope members answer 404, so a caller learns nothing about what it
may not see; a missing right answers 403; no or a bad token 401. A refused write changes nothing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from datong.core.crypto import Keyring
from datong.core.db import Database
from datong.members.models import Consent, Identity, Member, MergeEvent
from tests.api.world import World, build_world

CALLERS = (
    "admin",
    "operator",
    "agent",
    "store",
    "guide",
    "pos_key",
    "store_key",
    "b_admin",
    "anonymous",
    "bad",
)
RIGHTS = {
    "admin": {"read", "write", "merge", "export", "delete", "imports", "org", "audit"},
    "operator": {"read", "write", "merge", "export", "imports", "org"},
    "agent": {"read", "write", "org"},
    "store": {"read", "write", "org"},
    "guide": {"read", "org"},
    "pos_key": {"read", "write"},
    "store_key": {"read", "write"},
    "b_admin": {"read", "write", "merge", "export", "delete", "imports", "org", "audit"},
}
SEES = {  # which of the world's members each caller may see
    "admin": {"in_f1", "in_f3", "bound", "spare"},
    "operator": {"in_f1", "in_f3", "bound", "spare"},
    "pos_key": {"in_f1", "in_f3", "bound", "spare"},
    "agent": {"in_f1", "bound"},
    "store": {"in_f1"},
    "store_key": {"in_f1"},
    "guide": {"bound"},
    "b_admin": {"other_brand"},
}
TARGETS = ("in_f1", "in_f3", "bound", "other_brand")
CONSENT = {"purpose": "marketing_sms", "granted": True, "text_version": "v1"}
# (method, route path, right, success status, body, executed when allowed)
MEMBER_ENDPOINTS = [
    ("GET", "/api/v1/members/{member_id}", "read", 200, None, True),
    ("GET", "/api/v1/members/{member_id}/explain", "read", 200, None, True),
    ("POST", "/api/v1/members/{member_id}/consents", "write", 201, CONSENT, True),
    ("GET", "/api/v1/members/{member_id}/export", "export", 200, None, True),
    ("POST", "/api/v1/members/{member_id}/delete", "delete", 200, {"reason": "asked"}, False),
]
COVERED = {
    ("GET", "/healthz"),
    ("POST", "/api/v1/auth/login"),
    ("GET", "/api/v1/auth/me"),
    ("POST", "/api/v1/members/register"),
    ("GET", "/api/v1/members/lookup"),
    ("POST", "/api/v1/members/merge"),
    ("POST", "/api/v1/members/merges/{merge_id}/undo"),
    ("POST", "/api/v1/imports"),
    ("GET", "/api/v1/imports"),
    ("GET", "/api/v1/imports/{batch_id}"),
    ("GET", "/api/v1/imports/{batch_id}/errors"),
    ("GET", "/api/v1/org/stores"),
    ("GET", "/api/v1/org/stores/{store_id}"),
    ("GET", "/api/v1/org/agents"),
    ("GET", "/api/v1/org/regions"),
    ("GET", "/api/v1/org/guides"),
    ("GET", "/api/v1/audit"),
    *((m, p) for m, p, *_ in MEMBER_ENDPOINTS),
}


def _snapshot(db: Database) -> tuple[int, ...]:
    with db.reading() as s:
        return tuple(
            int(s.scalar(select(func.count()).select_from(t)) or 0)
            for t in (Member, Identity, Consent, MergeEvent)
        )


def _headers(world: World, caller: str) -> dict[str, str]:
    if caller == "anonymous":
        return {}
    if caller == "bad":
        return {"Authorization": "Bearer dts_not-a-token"}
    return world.headers(caller)


def _expected(caller: str, right: str | None, visible: bool, success: int) -> int:
    if caller in ("anonymous", "bad"):
        return 401
    if right is not None and right not in RIGHTS[caller]:
        return 403
    return success if visible else 404


class Matrix:
    def __init__(self, world: World, db: Database) -> None:
        self.world, self.db = world, db
        self.wrong: list[str] = []

    def check(
        self,
        caller: str,
        method: str,
        url: str,
        expected: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        before = _snapshot(self.db) if expected >= 400 and method == "POST" else None
        answer = self.world.client.request(
            method, url, json=body, headers={**_headers(self.world, caller), **(headers or {})}
        )
        if answer.status_code != expected:
            self.wrong.append(
                f"{caller} {method} {url}: {answer.status_code} != {expected} {answer.text[:120]}"
            )
        if before is not None and _snapshot(self.db) != before:
            self.wrong.append(f"{caller} {method} {url}: refused, yet the data changed")
        return answer


def test_every_route_is_in_the_matrix(database: Database, keyring: Keyring) -> None:
    world = build_world(database, keyring)
    paths = world.client.get("/openapi.json").json()["paths"]
    routes = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    assert routes == COVERED


def test_access_matrix(database: Database, keyring: Keyring) -> None:
    world = build_world(database, keyring)
    matrix = Matrix(world, database)
    members = world.members
    for caller in CALLERS:
        authed = caller not in ("anonymous", "bad")
        matrix.check(caller, "GET", "/healthz", 200)
        matrix.check(caller, "GET", "/api/v1/auth/me", 200 if authed else 401)
        for method, path, right, success, body, executed in MEMBER_ENDPOINTS:
            for target in TARGETS:
                expected = _expected(caller, right, target in SEES.get(caller, set()), success)
                if expected == success and not executed:
                    continue  # destructive: its success is tested on its own
                matrix.check(caller, method, path.format(member_id=members[target]), expected, body)
        found = matrix.check(
            caller,
            "GET",
            "/api/v1/members/lookup?kind=card_no&value=in_f3&namespace=pos_test",
            _expected(caller, "read", True, 200),
        )
        if found.status_code == 200:
            visible = "in_f3" in SEES[caller]
            assert [m["id"] for m in found.json()] == ([members["in_f3"]] if visible else []), caller
        matrix.check(
            caller,
            "POST",
            "/api/v1/members/register",
            _expected(caller, "write", True, 201),
            {"source": "pos_test", "card_no": f"new-{caller}", "name": "赵新"},
            headers={"Idempotency-Key": f"matrix-{caller}"},
        )
        merge = {"survivor_id": members["in_f1"], "absorbed_id": members["spare"], "reason": "test"}
        expected = _expected(caller, "merge", True, 200)
        if expected != 200:
            matrix.check(caller, "POST", "/api/v1/members/merge", expected, merge)
        matrix.check(
            caller,
            "POST",
            "/api/v1/members/merges/mrg_unknown/undo",
            _expected(caller, "merge", False, 200),
            {"reason": "test"},
        )
        matrix.check(caller, "GET", "/api/v1/imports", _expected(caller, "imports", True, 200))
        for path in ("/api/v1/imports/imp_unknown", "/api/v1/imports/imp_unknown/errors"):
            matrix.check(caller, "GET", path, _expected(caller, "imports", False, 200))
        if _expected(caller, "imports", True, 202) != 202:
            answer = world.client.post(
                "/api/v1/imports",
                headers=_headers(world, caller),
                data={"kind": "members"},
                files={"file": ("a.csv", b"card\n1\n")},
            )
            if answer.status_code != _expected(caller, "imports", True, 202):
                matrix.wrong.append(f"{caller} POST /api/v1/imports: {answer.status_code}")
        for path in ("stores", "agents", "regions", "guides"):
            matrix.check(caller, "GET", f"/api/v1/org/{path}", _expected(caller, "org", True, 200))
        sees_f3 = caller in ("admin", "operator")
        matrix.check(
            caller, "GET", f"/api/v1/org/stores/{world.stores['F3']}", _expected(caller, "org", sees_f3, 200)
        )
        matrix.check(caller, "GET", "/api/v1/audit", _expected(caller, "audit", True, 200))
    assert matrix.wrong == []


def test_scoped_lists_show_only_what_the_caller_covers(database: Database, keyring: Keyring) -> None:
    world = build_world(database, keyring)

    def store_codes(caller: str) -> list[str]:
        return sorted(
            s["code"] for s in world.client.get("/api/v1/org/stores", headers=world.headers(caller)).json()
        )

    assert store_codes("admin") == ["D1", "F1", "F2", "F3"]
    assert store_codes("agent") == ["F1", "F2"]
    assert store_codes("store") == ["F1"]
    assert store_codes("guide") == ["F1"]
    b_ids = {s["id"] for s in world.client.get("/api/v1/org/stores", headers=world.headers("b_admin")).json()}
    assert b_ids.isdisjoint({world.stores[c] for c in ("D1", "F1", "F2", "F3")}) and len(b_ids) == 4
    audit = world.client.get("/api/v1/audit?limit=1000", headers=world.headers("b_admin")).json()
    brand_a_ids = set(world.members.values()) - {world.members["other_brand"]}
    assert audit and not {e["object_id"] for e in audit} & brand_a_ids


def test_destructive_calls_succeed_for_their_owners(database: Database, keyring: Keyring) -> None:
    world = build_world(database, keyring)
    members = world.members
    merged = world.client.post(
        "/api/v1/members/merge",
        headers=world.headers("operator"),
        json={"survivor_id": members["in_f1"], "absorbed_id": members["spare"], "reason": "x"},
    )
    assert merged.status_code == 200
    undone = world.client.post(
        f"/api/v1/members/merges/{merged.json()['merge_id']}/undo",
        headers=world.headers("operator"),
        json={"reason": "two people"},
    )
    assert undone.status_code == 200
    deleted = world.client.post(
        f"/api/v1/members/{members['spare']}/delete",
        headers=world.headers("admin"),
        json={"reason": "the member asked"},
    )
    assert deleted.status_code == 200
    view = world.client.get(f"/api/v1/members/{members['spare']}", headers=world.headers("admin")).json()
    assert (view["status"], view["identities"], view["golden"]["name"]) == ("deleted", [], None)
