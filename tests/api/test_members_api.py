"""Registration with idempotency keys, binding a new account to a known person, lookups, masking."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.api.conftest import CARD_SOURCE, MEMBERS, MINI_APPID, World

REGISTER = "/api/v1/members/register"
MASKED = re.compile(r"^1\d{2}\*{4}\d{4}$")


def register(w: World, caller: str, body: dict[str, Any], key: str | None) -> httpx.Response:
    headers = w.auth(caller) | ({"Idempotency-Key": key} if key is not None else {})
    response: httpx.Response = w.client.post(REGISTER, json=body, headers=headers)
    return response


def view(w: World, caller: str, member_id: str, **params: str) -> dict[str, Any]:
    response = w.client.get(f"/api/v1/members/{member_id}", params=params, headers=w.auth(caller))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def lookup(w: World, caller: str, kind: str, value: str, namespace: str | None = None) -> list[str]:
    params = {"kind": kind, "value": value} | ({"namespace": namespace} if namespace is not None else {})
    response = w.client.get("/api/v1/members/lookup", params=params, headers=w.auth(caller))
    assert response.status_code == 200, response.text
    return [m["id"] for m in response.json()]


def spaced(phone: str) -> str:
    return f"+86 {phone[:3]} {phone[3:7]} {phone[7:]}"


def test_same_key_same_body_answers_again_and_writes_nothing(world: World) -> None:
    w = world
    body = {
        "source": CARD_SOURCE,
        "card_no": w.fresh_card(),
        "phone": w.fresh_phone(),
        "name": w.fresh_name(),
        "store_code": "A1",
    }
    key = f"reg-{body['card_no']}"
    before = w.counts()
    first = register(w, "pos_key", body, key)
    assert first.status_code == 201, first.text
    member_id = first.json()["member_id"]
    assert first.json() == {"member_id": member_id, "created": True}
    written = w.counts()
    delta = {k: written[k] - before[k] for k in ("member", "identity", "source_record", "idempotent_request")}
    assert delta == {"member": 1, "identity": 2, "source_record": 1, "idempotent_request": 1}
    assert w.audit_actions(w.b1.tenant_id, member_id) == ["member.register"]

    again = register(w, "pos_key", body, key)
    assert (again.status_code, again.json()) == (201, {"member_id": member_id, "created": True})
    assert w.counts() == written

    changed = register(w, "pos_key", body | {"name": w.fresh_name()}, key)
    assert changed.status_code == 409
    assert changed.json()["code"] == "conflict"
    assert changed.json()["field"] == "Idempotency-Key"
    assert w.counts() == written

    # A key belongs to its caller: the store key may use the same one; the card says who the person is.
    other = register(w, "store_key", body, key)
    assert (other.status_code, other.json()) == (200, {"member_id": member_id, "created": False})
    assert w.member(member_id).home_store_id == w.b1.stores["A1"]


def test_a_missing_or_overlong_key_is_refused_naming_the_header(world: World) -> None:
    w = world
    body = {"source": CARD_SOURCE, "card_no": w.fresh_card(), "phone": w.fresh_phone()}
    before = w.counts()
    for key in (None, "", "   ", "k" * 129):
        answer = register(w, "pos_key", body, key)
        assert answer.status_code == 422, (key, answer.text)
        assert (answer.json()["code"], answer.json()["field"]) == ("invalid", "Idempotency-Key")
    assert w.counts() == before


def test_a_bad_phone_is_refused_naming_the_field_and_leaves_the_key_unused(world: World) -> None:
    w = world
    card = w.fresh_card()
    key = f"reg-{card}"
    before = w.counts()
    for phone in ("1391234567", "021-62345678", "139****5678", "not a phone"):
        answer = register(w, "hq_operator", {"source": CARD_SOURCE, "card_no": card, "phone": phone}, key)
        assert answer.status_code == 422, (phone, answer.text)
        assert (answer.json()["code"], answer.json()["field"]) == ("invalid", "phone")
    assert w.counts() == before
    fixed = register(
        w, "hq_operator", {"source": CARD_SOURCE, "card_no": card, "phone": w.fresh_phone()}, key
    )
    assert fixed.status_code == 201, fixed.text


def test_binding_a_new_account_to_a_known_phone_and_name_returns_the_same_member(world: World) -> None:
    w = world
    phone, name, card = w.fresh_phone(), w.fresh_name(), w.fresh_card()
    first = register(
        w,
        "store_manager",
        {"source": CARD_SOURCE, "card_no": card, "phone": phone, "name": name, "store_code": "A1"},
        f"card-{card}",
    )
    assert first.status_code == 201, first.text
    member_id = first.json()["member_id"]
    openid, unionid = f"o-{card}", f"u-{card}"
    bind = {
        "source": "miniprogram",
        "openid": openid,
        "appid": MINI_APPID,
        "unionid": unionid,
        "phone": spaced(phone),  # another spelling of the same phone
        "name": name,
    }
    before = w.counts()
    bound = register(w, "pos_key", bind, f"bind-{card}")
    assert (bound.status_code, bound.json()) == (200, {"member_id": member_id, "created": False})
    after = w.counts()
    assert (after["member"], after["identity"]) == (before["member"], before["identity"] + 2)

    shown = view(w, "hq_admin", member_id, unmask="true")
    assert sorted((i["kind"], i["namespace"], i["value"]) for i in shown["identities"]) == [
        ("card_no", CARD_SOURCE, card),
        ("openid", MINI_APPID, openid),
        ("phone", "", phone),
        ("unionid", "", unionid),
    ]
    assert sorted(
        r["source"]
        for r in w.client.get(f"/api/v1/members/{member_id}/export", headers=w.auth("hq_admin")).json()[
            "records"
        ]
    ) == ["miniprogram", CARD_SOURCE]

    # Every way to find the person, from a POS, a mini-program or the CRM.
    for kind, value, namespace in (
        ("phone", phone, None),
        ("phone", spaced(phone), None),
        ("phone", f"{phone[:3]}-{phone[3:7]}-{phone[7:]}", None),
        ("unionid", unionid, None),
        ("openid", openid, MINI_APPID),
        ("card_no", card, CARD_SOURCE),
    ):
        assert lookup(w, "pos_key", kind, value, namespace) == [member_id], (kind, value)
    # An openid is per app and a card number per source system: another namespace is someone else.
    assert lookup(w, "pos_key", "openid", openid, "wx-other-app") == []
    assert lookup(w, "pos_key", "openid", openid) == []
    assert lookup(w, "pos_key", "card_no", card, "pos_other") == []
    assert lookup(w, "pos_key", "card_no", card) == []
    summary = w.client.get(
        "/api/v1/members/lookup",
        params={"kind": "card_no", "value": card, "namespace": CARD_SOURCE},
        headers=w.auth("agent_manager"),
    ).json()
    masked_name = name[0] + "*" * (len(name) - 1)
    assert summary == [
        {"id": member_id, "name": masked_name, "city": None, "home_store_id": w.b1.stores["A1"]}
    ]
    assert lookup(w, "guide", "card_no", card, CARD_SOURCE) == []  # not the guide's member


def test_lookup_refuses_an_unknown_kind_or_a_bad_value_naming_the_field(world: World) -> None:
    w = world
    for params, field in (
        ({"kind": "passport", "value": "E1234567"}, "kind"),
        ({"kind": "phone", "value": "12345"}, "value"),
        ({"kind": "phone", "value": "  "}, "value"),
        ({"value": "13912340001"}, "kind"),
    ):
        answer = w.client.get("/api/v1/members/lookup", params=params, headers=w.auth("hq_admin"))
        assert answer.status_code == 422, (params, answer.text)
        assert (answer.json()["code"], answer.json()["field"]) == ("invalid", field)


def test_every_role_sees_the_phone_masked_and_only_hq_admin_may_unmask(world: World) -> None:
    w = world
    member_id = w.b1.members["a1_guide"]
    _, _, name, phone = MEMBERS["a1_guide"]
    masked_phone, masked_name = f"{phone[:3]}****{phone[-4:]}", name[0] + "*"
    assert MASKED.match(masked_phone)
    unmasked_before = w.audit_actions(w.b1.tenant_id, member_id).count("member.view_unmasked")
    callers = [("hq_admin", member_id), ("hq_operator", member_id), ("agent_manager", member_id)]
    callers += [("store_manager", member_id), ("guide", member_id), ("pos_key", member_id)]
    callers += [("store_key", w.b1.members["direct"])]
    for caller, target in callers:
        expected_phone = MEMBERS["direct"][3] if target != member_id else phone
        for params in ({}, {"unmask": "false"}) + (() if caller == "hq_admin" else ({"unmask": "true"},)):
            shown = view(w, caller, target, **params)
            assert shown["unmasked"] is False
            golden = shown["golden"]
            assert golden["phone"] == f"{expected_phone[:3]}****{expected_phone[-4:]}", (caller, params)
            assert MASKED.match(golden["phone"])
            assert len(golden["name"]) == 2 and golden["name"].endswith("*")
            phones = [i["value"] for i in shown["identities"] if i["kind"] == "phone"]
            assert phones == [golden["phone"]]
    assert w.audit_actions(w.b1.tenant_id, member_id).count("member.view_unmasked") == unmasked_before

    plain = view(w, "hq_admin", member_id, unmask="true")
    assert plain["unmasked"] is True
    assert (plain["golden"]["phone"], plain["golden"]["name"]) == (phone, name)
    assert [i["value"] for i in plain["identities"] if i["kind"] == "phone"] == [phone]
    actions = w.audit_actions(w.b1.tenant_id, member_id)
    assert actions.count("member.view_unmasked") == unmasked_before + 1
    assert actions[-1] == "member.view_unmasked"
    trail = w.client.get(
        "/api/v1/audit", params={"object_id": member_id, "limit": "1"}, headers=w.auth("hq_admin")
    ).json()
    assert [(e["action"], e["actor"], e["object_type"]) for e in trail] == [
        ("member.view_unmasked", f"user:{w.b1.users['hq_admin']}", "member")
    ]
    masked_again = view(w, "hq_admin", member_id)
    assert masked_again["golden"]["name"] == masked_name
