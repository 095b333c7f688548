"""Errors are clear: the status, a code, and the field at fault; and a refused request changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import CARD_SOURCE, World

UNKNOWN = "mem_00000000000000000000000000"
VALID_REGISTRATION = {"source": CARD_SOURCE, "card_no": "E-1", "phone": "13712345678"}

# (method, path, JSON body or raw bytes, query, the field the answer must name)
WRONG_TYPES: list[tuple[str, str, Any, dict[str, str], str]] = [
    (
        "POST",
        "/api/v1/members/{member}/consents",
        {"purpose": "marketing_sms", "granted": "perhaps", "text_version": "v1"},
        {},
        "granted",
    ),
    (
        "POST",
        "/api/v1/members/merge",
        {"survivor_id": 12345, "absorbed_id": "mem_x", "reason": "r"},
        {},
        "survivor_id",
    ),
    ("POST", "/api/v1/members/register", VALID_REGISTRATION | {"birthday": "next tuesday"}, {}, "birthday"),
    ("POST", "/api/v1/members/register", VALID_REGISTRATION | {"phone": 13712345678}, {}, "phone"),
    (
        "POST",
        "/api/v1/members/register",
        VALID_REGISTRATION
        | {"consents": [{"purpose": "marketing_sms", "granted": "maybe", "text_version": "v1"}]},
        {},
        "consents.0.granted",
    ),
    ("POST", "/api/v1/members/register", VALID_REGISTRATION | {"source": ""}, {}, "source"),
    ("POST", "/api/v1/members/{member}/delete", {"reason": ["a", "b"]}, {}, "reason"),
    ("POST", "/api/v1/members/merges/mrg_x/undo", {}, {}, "reason"),
    ("POST", "/api/v1/auth/login", {"tenant": "t", "username": ["u"], "password": "p"}, {}, "username"),
    ("GET", "/api/v1/audit", None, {"limit": "lots"}, "limit"),
    ("GET", "/api/v1/members/{member}", None, {"unmask": "perhaps"}, "unmask"),
    ("GET", "/api/v1/members/lookup", None, {"value": "13712345678"}, "kind"),
    ("POST", "/api/v1/members/merge", b'{"survivor_id": "a",', {}, "body"),  # not JSON
    ("POST", "/api/v1/members/merge", None, {}, "body"),  # no body at all
    ("POST", "/api/v1/members/merge", [1, 2], {}, "body"),  # JSON, but not an object
]


@pytest.mark.parametrize(
    ("method", "path", "body", "query", "field"),
    WRONG_TYPES,
    ids=[f"{m} {p} {f}" for m, p, _, _, f in WRONG_TYPES],
)
def test_bad_input_is_422_naming_the_field(
    world: World, method: str, path: str, body: Any, query: dict[str, str], field: str
) -> None:
    w = world
    before = w.counts()
    url = path.format(member=w.b1.members["a1"])
    headers = w.auth("hq_admin") | {"Idempotency-Key": "errors-test"}
    if isinstance(body, bytes):
        headers["Content-Type"] = "application/json"
        answer = w.client.request(method, url, content=body, params=query, headers=headers)
    else:
        answer = w.client.request(method, url, json=body, params=query, headers=headers)
    assert answer.status_code == 422, answer.text
    error = answer.json()
    assert (error["code"], error["field"]) == ("invalid", field)
    assert error["message"] and error["message"] == error["detail"]["errors"][0]["reason"]
    assert error["detail"]["errors"][0]["field"] == field
    assert w.counts() == before


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("GET", "/explain", None),
        ("GET", "/export", None),
        ("POST", "/consents", {"purpose": "marketing_sms", "granted": True, "text_version": "v1"}),
        ("POST", "/delete", {"reason": "asked"}),
    ],
)
def test_an_unknown_member_is_404_not_found(world: World, method: str, suffix: str, body: Any) -> None:
    w = world
    before = w.counts()
    answer = w.client.request(
        method, f"/api/v1/members/{UNKNOWN}{suffix}", json=body, headers=w.auth("hq_admin")
    )
    assert answer.status_code == 404
    assert answer.json() == {"code": "not_found", "message": f"no member {UNKNOWN}", "field": "member_id"}
    assert w.counts() == before


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer dts_forged",
        "Bearer dtk_abc_def",
        "Bearer dtk_",
    ],
)
def test_no_or_a_bad_token_is_401_with_a_bearer_challenge(world: World, authorization: str | None) -> None:
    w = world
    headers = {} if authorization is None else {"Authorization": authorization}
    before = w.counts()
    for method, path, body in (
        ("GET", f"/api/v1/members/{w.b1.members['a1']}", None),
        ("GET", "/api/v1/auth/me", None),
        # Who is asking is settled before what is asked: a bad body without a token is still a 401.
        ("POST", "/api/v1/members/register", {"source": 5}),
    ):
        answer = w.client.request(method, path, json=body, headers=headers | {"Idempotency-Key": "k"})
        assert answer.status_code == 401, (path, answer.text)
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert answer.json()["code"] == "unauthenticated"
    assert w.counts() == before


def test_a_revoked_key_and_a_logged_out_user_are_401(world: World) -> None:
    """A token stops working when its key is revoked or its user is disabled."""
    from datong.tenancy.models import ApiKey, User
    from datong.tenancy.service import create_api_key

    w = world
    with w.db.unit_of_work() as s:
        secret, key = create_api_key(s, tenant_id=w.b1.tenant_id, name="temp", scopes=["members:read"])
    url = f"/api/v1/members/{w.b1.members['a1']}"
    assert w.client.get(url, headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    wrong_secret = secret[:-2] + ("aa" if not secret.endswith("aa") else "bb")
    assert w.client.get(url, headers={"Authorization": f"Bearer {wrong_secret}"}).status_code == 401
    with w.db.unit_of_work() as s:
        revoked = s.get(ApiKey, key.id)
        assert revoked is not None
        from datong.core.clock import utcnow

        revoked.revoked_at = utcnow()
    assert w.client.get(url, headers={"Authorization": f"Bearer {secret}"}).status_code == 401

    login = w.client.post(
        "/api/v1/auth/login",
        json={"tenant": w.b1.code, "username": w.b1.usernames["guide"], "password": w.b1.passwords["guide"]},
    )
    token = login.json()["token"]
    assert w.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    with w.db.unit_of_work() as s:
        user = s.get(User, w.b1.users["guide"])
        assert user is not None
        user.active = False
    try:
        answer = w.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert (answer.status_code, answer.headers["WWW-Authenticate"]) == (401, "Bearer")
    finally:
        with w.db.unit_of_work() as s:
            user = s.get(User, w.b1.users["guide"])
            assert user is not None
            user.active = True
