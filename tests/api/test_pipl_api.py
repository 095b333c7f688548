"""Consent, and the person's rights under PIPL: a copy of their data (export) and erasure (delete)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select

from datong.members.models import Identity, SourceRecord
from datong.orders.models import Order
from tests.api.conftest import CARD_SOURCE, MINI_APPID, World

REGISTER = "/api/v1/members/register"


def register(w: World, body: dict[str, Any], caller: str = "pos_key") -> tuple[int, str]:
    response = w.client.post(
        REGISTER, json=body, headers=w.auth(caller) | {"Idempotency-Key": w.fresh_card()}
    )
    assert response.status_code in (200, 201), response.text
    member_id: str = response.json()["member_id"]
    return response.status_code, member_id


def consent(w: World, member_id: str, body: dict[str, Any], caller: str = "store_manager") -> Any:
    return w.client.post(f"/api/v1/members/{member_id}/consents", json=body, headers=w.auth(caller))


def test_the_newest_consent_is_in_force(world: World) -> None:
    w = world
    member_id = w.fresh_member(w.b1, store="A1")
    granted = consent(w, member_id, {"purpose": "marketing_sms", "granted": True, "text_version": "v1"})
    assert granted.status_code == 201, granted.text
    assert {k: granted.json()[k] for k in ("purpose", "granted")} == {
        "purpose": "marketing_sms",
        "granted": True,
    }
    withdrawn = consent(
        w,
        member_id,
        {"purpose": "marketing_sms", "granted": False, "text_version": "v2", "channel": "sms-reply-TD"},
        caller="pos_key",
    )
    assert withdrawn.status_code == 201, withdrawn.text
    other = consent(w, member_id, {"purpose": "wechat_messages", "granted": True, "text_version": "v1"})
    assert other.status_code == 201
    shown = w.client.get(f"/api/v1/members/{member_id}", headers=w.auth("agent_manager")).json()
    assert shown["consents"] == {
        "marketing_sms": {
            "granted": False,
            "at": withdrawn.json()["at"],
            "channel": "sms-reply-TD",
            "text_version": "v2",
        },
        "wechat_messages": {
            "granted": True,
            "at": other.json()["at"],
            "channel": f"user:{w.b1.users['store_manager']}",  # no channel given: who recorded it
            "text_version": "v1",
        },
    }
    actions = w.audit_actions(w.b1.tenant_id, member_id)
    assert actions[-3:] == ["consent.grant", "consent.withdraw", "consent.grant"]


def test_a_bad_consent_is_refused_naming_the_field(world: World) -> None:
    w = world
    member_id = w.fresh_member(w.b1, store="A1")
    before = w.counts()
    for body, field in (
        ({"purpose": "sell_to_partners", "granted": True, "text_version": "v1"}, "purpose"),
        ({"purpose": "", "granted": True, "text_version": "v1"}, "purpose"),
        ({"purpose": "marketing_sms", "granted": True, "text_version": ""}, "text_version"),
        ({"purpose": "marketing_sms", "granted": True}, "text_version"),
        ({"purpose": "marketing_sms", "granted": "maybe", "text_version": "v1"}, "granted"),
    ):
        answer = consent(w, member_id, body)
        assert answer.status_code == 422, (body, answer.text)
        assert (answer.json()["code"], answer.json()["field"]) == ("invalid", field)
    assert w.counts() == before
    assert w.client.get(f"/api/v1/members/{member_id}", headers=w.auth("hq_admin")).json()["consents"] == {}


def test_consents_given_at_registration_are_recorded(world: World) -> None:
    w = world
    _, member_id = register(
        w,
        {
            "source": "miniprogram",
            "openid": f"o-{w.fresh_card()}",
            "appid": MINI_APPID,
            "phone": w.fresh_phone(),
            "consents": [{"purpose": "personalised_marketing", "granted": True, "text_version": "2024-06"}],
        },
    )
    shown = w.client.get(f"/api/v1/members/{member_id}", headers=w.auth("hq_operator")).json()
    assert {k: v["granted"] for k, v in shown["consents"].items()} == {"personalised_marketing": True}
    assert shown["consents"]["personalised_marketing"]["channel"] == "miniprogram"


def test_export_gives_every_record_with_its_raw_row_and_is_audited(world: World) -> None:
    w = world
    phone, name, card = w.fresh_phone(), w.fresh_name(), w.fresh_card()
    card_row = {
        "source": CARD_SOURCE,
        "card_no": card,
        "phone": phone,
        "name": name,
        "birthday": "1990-03-07",
    }
    status, member_id = register(w, card_row | {"store_code": "A2"})
    assert status == 201
    openid = f"o-{card}"
    mini_row = {"source": "miniprogram", "openid": openid, "appid": MINI_APPID, "phone": phone, "name": name}
    assert register(w, mini_row) == (200, member_id)

    answer = w.client.get(f"/api/v1/members/{member_id}/export", headers=w.auth("hq_admin"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["id"], body["unmasked"], body["golden"]["phone"]) == (member_id, True, phone)
    assert body["golden"]["birthday"] == "1990-03-07"
    assert [(r["source"], r["channel"]) for r in body["records"]] == [
        (CARD_SOURCE, "api"),
        ("miniprogram", "api"),
    ]
    raws = [r["raw"] for r in body["records"]]
    assert all(set(r) >= {"at"} for r in raws)  # when the registration arrived
    assert [{k: v for k, v in r.items() if k != "at"} for r in raws] == [
        card_row | {"store_code": "A2"},
        mini_row,
    ]
    trail = w.client.get(
        "/api/v1/audit", params={"object_id": member_id, "limit": "1"}, headers=w.auth("hq_admin")
    ).json()
    assert [(e["action"], e["actor"]) for e in trail] == [("member.export", f"user:{w.b1.users['hq_admin']}")]


def test_an_export_by_a_caller_who_may_not_unmask_shows_no_plaintext_phone(world: World) -> None:
    w = world
    phone = w.fresh_phone()
    _, member_id = register(w, {"source": CARD_SOURCE, "card_no": w.fresh_card(), "phone": phone})
    answer = w.client.get(f"/api/v1/members/{member_id}/export", headers=w.auth("hq_operator"))
    assert answer.status_code == 200
    assert answer.json()["golden"]["phone"] == f"{phone[:3]}****{phone[-4:]}"
    assert phone not in json.dumps(answer.json())


def test_delete_erases_the_person_and_keeps_the_orders(world: World) -> None:
    w = world
    phone, card = w.fresh_phone(), w.fresh_card()
    status, member_id = register(
        w,
        {"source": CARD_SOURCE, "card_no": card, "phone": phone, "name": w.fresh_name(), "store_code": "A1"},
    )
    assert status == 201
    assert (
        consent(w, member_id, {"purpose": "marketing_sms", "granted": True, "text_version": "v1"}).status_code
        == 201
    )
    with w.db.unit_of_work() as s:
        s.add(
            Order(
                tenant_id=w.b1.tenant_id,
                channel="pos",
                order_no=f"POS-{card}",
                member_id=member_id,
                status="completed",
                status_raw="已完成",
                total_fen=129900,
                paid_fen=119900,
                store_id=w.b1.stores["A1"],
            )
        )
    lookup = {"kind": "phone", "value": phone}
    assert [
        m["id"]
        for m in w.client.get("/api/v1/members/lookup", params=lookup, headers=w.auth("hq_admin")).json()
    ] == [member_id]

    # Only HQ administrators erase; the refusal changes nothing.
    before = w.counts()
    refused = w.client.post(
        f"/api/v1/members/{member_id}/delete", json={"reason": "x"}, headers=w.auth("hq_operator")
    )
    assert refused.status_code == 403
    empty = w.client.post(
        f"/api/v1/members/{member_id}/delete", json={"reason": " "}, headers=w.auth("hq_admin")
    )
    assert (empty.status_code, empty.json()["field"]) == (422, "reason")
    assert w.counts() == before

    deleted = w.client.post(
        f"/api/v1/members/{member_id}/delete", json={"reason": "会员本人申请注销"}, headers=w.auth("hq_admin")
    )
    assert (deleted.status_code, deleted.json()) == (200, {"member_id": member_id, "status": "deleted"})

    shown = w.client.get(f"/api/v1/members/{member_id}?unmask=true", headers=w.auth("hq_admin")).json()
    assert (shown["status"], shown["identities"]) == ("deleted", [])
    # Nothing about the person is left; the tombstone keeps the store it belonged to (not personal data).
    assert {k: v for k, v in shown["golden"].items() if v is not None} == {"home_store_id": w.b1.stores["A1"]}
    assert shown["orders"] == []
    for params in (lookup, {"kind": "card_no", "value": card, "namespace": CARD_SOURCE}):
        found = w.client.get("/api/v1/members/lookup", params=params, headers=w.auth("hq_admin"))
        assert (found.status_code, found.json()) == (200, [])
    with w.db.reading() as s:
        assert (
            s.scalar(select(func.count()).select_from(Identity).where(Identity.member_id == member_id)) == 0
        )
        records = s.scalars(select(SourceRecord).where(SourceRecord.member_id == member_id)).all()
        assert [(r.status, r.raw_enc, r.pii_enc, r.person, r.keys) for r in records] == [
            ("erased", b"", None, {}, [])
        ]
        order = s.scalars(select(Order).where(Order.order_no == f"POS-{card}")).one()
        assert (order.member_id, order.total_fen, order.paid_fen, order.status) == (
            None,
            129900,
            119900,
            "completed",
        )
    trail = w.client.get("/api/v1/audit", params={"object_id": member_id}, headers=w.auth("hq_admin")).json()
    assert [(e["actor"], e["note"]) for e in trail if e["action"] == "member.delete"] == [
        (f"user:{w.b1.users['hq_admin']}", "会员本人申请注销")
    ]

    before = w.counts()
    again = w.client.post(
        f"/api/v1/members/{member_id}/delete", json={"reason": "again"}, headers=w.auth("hq_admin")
    )
    assert (again.status_code, again.json()["code"]) == (409, "conflict")
    assert w.counts() == before

    # The same phone registering again is a new person to the brand.
    status, newcomer = register(w, {"source": CARD_SOURCE, "card_no": w.fresh_card(), "phone": phone})
    assert status == 201 and newcomer != member_id
