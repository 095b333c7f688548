"""Route matrix rows: shopping guides (codes, binding, touches, credits, commission, disputes, KPIs).

Who holds which right (``tenancy/rules.py``): guides:read and guides:write every role (not the POS
keys), guides:admin HQ. Who sees what, written by hand: HQ, the agent manager (agent A: A1, A2) and the
store manager (A1) see guides G1 and G2 (both of A1) and their codes, credits and disputes; the guide
sees itself (G1); brand 2's admin sees brand 2's. Guides named by code in a body are looked up in the
caller's own brand, so brand 2's admin names its own G1 and G2; objects named by id (a code, a dispute)
or by a brand's order number ("other_brand": brand 2's) are 404 across brands. The world's guide data
is ``tests/api/guides_world.py``.
"""

from __future__ import annotations

import struct
from datetime import UTC, timedelta

import httpx
import segno
from sqlalchemy import select

from datong.guides.models import BindingChange, CommissionDispute, QrCode, Touch
from datong.ledger.models import Transfer
from datong.members.models import Member
from datong.org.models import Guide
from tests.api.conftest import MEMBERS, ROLES, Brand, World, instant
from tests.api.guides_world import (
    GUIDE_CLAIM,
    GUIDE_CLAWED_BACK,
    GUIDE_EARNED,
    GUIDE_PAID,
    GUIDES_PERIOD,
    landing_url,
    october,
)
from tests.api.matrix import (
    HQ,
    MEMBER_TARGETS,
    SEES_MEMBERS,
    Endpoint,
    brand_and_label,
    fresh_like,
    label,
    target_member_id,
    write,
)

GUIDE_USERS = frozenset({*ROLES, "other_brand_admin"})  # guides:read, guides:write
GUIDE_ADMINS = HQ  # guides:admin
BOTH = frozenset({"G1", "G2"})
# Objects of a guide, named by id or by a brand's order number.
GUIDE_TARGETS = ("G1", "G2", "other_brand", "unknown")
SEES_GUIDE_OBJECTS = {
    **{caller: BOTH for caller in ("hq_admin", "hq_operator", "agent_manager", "store_manager")},
    "guide": frozenset({"G1"}),
    "other_brand_admin": frozenset({"other_brand"}),
}
# Guides named by their code in a body: in the caller's own brand.
CODE_TARGETS = ("G1", "G2", "unknown")
SEES_GUIDE_CODES = {**{caller: BOTH for caller in GUIDE_USERS}, "guide": frozenset({"G1"})}
UNKNOWN_GUIDE = "G-NONE"
UNKNOWN_QR_CODE = "qrc_00000000000000000000000000"
UNKNOWN_DISPUTE = "cdp_00000000000000000000000000"


def _seen_guides(caller: str) -> list[str]:
    return ["G1"] if caller == "guide" else ["G1", "G2"]


def _target(w: World, target: str) -> tuple[Brand, str]:
    """The brand and guide code an object target names ("other_brand": brand 2's G1)."""
    return (w.b2, "G1") if target == "other_brand" else (w.b1, target)


def _guide_code(target: str) -> str:
    return UNKNOWN_GUIDE if target == "unknown" else target


def _code_view(w: World, brand: Brand, code_id: str) -> dict[str, object]:
    with w.db.reading() as s:
        row = s.get(QrCode, code_id)
        assert row is not None
        guide = s.get(Guide, row.guide_id)
        assert guide is not None
    return {
        "id": row.id,
        "scene": row.scene,
        "kind": "guide",
        "name": row.name,
        "guide_id": guide.id,
        "guide_code": guide.code,
        "store_id": brand.stores["A1"],
        "store_code": "A1",
        "campaign_code": None,
        "window_days": None,
        "permanent": False,
        "wechat_url": None,
        "expires_at": None,
        "scans": row.scans,
        "active": True,
        "created_at": row.created_at.isoformat(),
        "payload": f"{landing_url(brand)}&scene={row.scene}",
    }


def _times_as_instants(view: dict[str, object], *names: str) -> None:
    for name in names:
        value = view[name]
        view[name] = instant(value).isoformat() if isinstance(value, str) else value


# --- QR codes -------------------------------------------------------------------------------------


def call_qr_create(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    body = {"kind": "guide", "name": f"{target}的名片 {w.fresh_card()}", "guide_code": _guide_code(target)}
    response: httpx.Response = w.client.post("/api/v1/guides/qr-codes", json=body, headers=write(w, caller))
    if ok:
        brand = w.brand_of(caller)
        answer = response.json()
        assert answer["scene"].startswith("g_") and len(answer["scene"]) == 14
        _times_as_instants(answer, "created_at")
        assert answer == {**_code_view(w, brand, answer["id"]), "name": body["name"], "scans": 0}
        assert answer["guide_id"] == brand.guides[target]
        assert w.audit_actions(brand.tenant_id, answer["id"]) == ["guides.qr_create"]
    return response


def _visible_codes(w: World, caller: str) -> list[str]:
    brand = w.brand_of(caller)
    guide_ids = [brand.guides[code] for code in _seen_guides(caller)]
    with w.db.reading() as s:
        return list(
            s.scalars(
                select(QrCode.id)
                .where(QrCode.tenant_id == brand.tenant_id, QrCode.guide_id.in_(guide_ids))
                .order_by(QrCode.created_at, QrCode.id)
            )
        )


def call_qr_list(w: World, caller: str, _: str, ok: bool) -> httpx.Response:
    response: httpx.Response = w.client.get("/api/v1/guides/qr-codes", headers=w.auth(caller))
    if ok:
        brand = w.brand_of(caller)
        answer = response.json()
        assert [c["id"] for c in answer] == _visible_codes(w, caller)
        first = answer[0]
        _times_as_instants(first, "created_at")
        assert first == _code_view(w, brand, brand.guide_cards["G1"])
    return response


def _code_id(w: World, target: str) -> str:
    if target == "unknown":
        return UNKNOWN_QR_CODE
    brand, guide = _target(w, target)
    return brand.guide_cards[guide]


def call_qr_get(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    code_id = _code_id(w, target)
    response: httpx.Response = w.client.get(f"/api/v1/guides/qr-codes/{code_id}", headers=w.auth(caller))
    if ok:
        answer = response.json()
        _times_as_instants(answer, "created_at")
        assert answer == _code_view(w, _target(w, target)[0], code_id)
    return response


def _payload(w: World, target: str) -> str:
    brand, guide = _target(w, target)
    with w.db.reading() as s:
        row = s.get(QrCode, brand.guide_cards[guide])
        assert row is not None
        return f"{landing_url(brand)}&scene={row.scene}"


def call_qr_png(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    response: httpx.Response = w.client.get(
        f"/api/v1/guides/qr-codes/{_code_id(w, target)}.png", headers=w.auth(caller)
    )
    if ok:
        assert response.headers["content-type"] == "image/png"
        assert response.content[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", response.content[16:24])  # IHDR
        modules = segno.make_qr(_payload(w, target), error="m").symbol_size(scale=1, border=4)[0]
        assert (width, height) == (modules * 8, modules * 8)
    return response


def call_qr_svg(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    response: httpx.Response = w.client.get(
        f"/api/v1/guides/qr-codes/{_code_id(w, target)}.svg", headers=w.auth(caller)
    )
    if ok:
        assert response.headers["content-type"] == "image/svg+xml"
        modules = segno.make_qr(_payload(w, target), error="m").symbol_size(scale=1, border=4)[0]
        assert response.content.startswith(b"<?xml")
        assert f'width="{modules * 8}" height="{modules * 8}"'.encode() in response.content
    return response


# --- members ----------------------------------------------------------------------------------------


def call_member_guide(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    member_id = target_member_id(w, target)
    response: httpx.Response = w.client.get(f"/api/v1/guides/members/{member_id}", headers=w.auth(caller))
    if ok:
        brand, name = brand_and_label(w, target)
        store, guide, _, _ = MEMBERS[name]
        assert response.json() == {
            "member_id": member_id,
            "guide_id": brand.guides[guide] if guide else None,
            "guide_code": guide,
            "guide_name": "小周" if guide else None,
            "guide_active": True if guide else None,
            "home_store_id": brand.stores[store] if store else None,
            "protected_until": None,
            "history": [],  # the world bound a1_guide by hand, before binding had a history
        }
    return response


def call_assign(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    member_id = fresh_like(w, target) if ok else target_member_id(w, target)
    response: httpx.Response = w.client.post(
        f"/api/v1/guides/members/{member_id}/guide", json={"guide_code": "G2"}, headers=write(w, caller)
    )
    if ok:
        brand, name = brand_and_label(w, target)
        before = MEMBERS[name][1]
        member = w.member(member_id)
        assert member.guide_id == brand.guides["G2"]
        with w.db.reading() as s:
            [change] = s.scalars(select(BindingChange).where(BindingChange.member_id == member_id))
        answer = response.json()
        assert (instant(answer.pop("at")), instant(answer.pop("protected_until"))) == (
            change.at,
            change.at + timedelta(days=90),
        )
        assert answer == {
            "id": change.id,
            "reason": "assign",
            "from_guide_id": brand.guides[before] if before else None,
            "from_guide_code": before,
            "to_guide_id": brand.guides["G2"],
            "to_guide_code": "G2",
            "to_store_id": brand.stores["A1"],
            "actor": label(w, caller),
        }
        assert w.audit_actions(brand.tenant_id, member_id)[-1] == "guides.assign"
    return response


def call_hand_over(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    brand = w.brand_of(caller)
    member_id = w.fresh_member(brand, store="A1", guide="G2") if ok else None
    body = {"guide_code": _guide_code(target), "to_guide_code": "G1"}
    if ok:
        with w.db.reading() as s:
            bound = set(s.scalars(select(Member.id).where(Member.guide_id == brand.guides["G2"])))
    response: httpx.Response = w.client.post("/api/v1/guides/hand-over", json=body, headers=write(w, caller))
    if ok:
        assert member_id in bound
        answer = response.json()
        with w.db.unit_of_work() as s:
            g2 = s.get(Guide, brand.guides["G2"])
            assert g2 is not None and g2.left_at is not None and not g2.active
            assert instant(answer.pop("left_at")) == g2.left_at
            moved = set(s.scalars(select(Member.id).where(Member.guide_id == brand.guides["G1"])))
            # G2 comes back, so the rest of the matrix still has two guides in A1.
            g2.active, g2.left_at = True, None
        assert answer == {
            "guide_id": brand.guides["G2"],
            "guide_code": "G2",
            "members_moved": len(bound),
            "to_guide_code": "G1",
            "to_store_code": None,
        }
        assert bound <= moved
    return response


def call_touch(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    member_id = fresh_like(w, target) if ok else target_member_id(w, target)
    body: dict[str, object] = {"member_id": member_id, "kind": "coupon", "ref": "NEW10"}
    if caller != "guide":  # a guide touches as itself
        body["guide_code"] = "G1"
    response: httpx.Response = w.client.post("/api/v1/guides/touches", json=body, headers=write(w, caller))
    if ok:
        brand = brand_and_label(w, target)[0]
        with w.db.reading() as s:
            [touch] = s.scalars(select(Touch).where(Touch.member_id == member_id))
        answer = response.json()
        assert instant(answer.pop("at")) == touch.at
        assert answer == {
            "id": touch.id,
            "member_id": member_id,
            "kind": "coupon",
            "guide_id": brand.guides["G1"],
            "guide_code": "G1",
            "store_id": brand.stores["A1"],
            "ref": "NEW10",
        }
        assert (touch.guide_id, touch.detail) == (
            brand.guides["G1"],
            {"ref": "NEW10", "actor": label(w, caller)},
        )
    return response


# --- an order's credit ------------------------------------------------------------------------------


def call_attribution(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    brand, guide = _target(w, target)
    order_no = "GE-none" if target == "unknown" else brand.guide_orders[guide]
    response: httpx.Response = w.client.get(
        "/api/v1/guides/attribution",
        params={"channel": "eshop", "order_no": order_no},
        headers=w.auth(caller),
    )
    if ok:
        answer = response.json()
        touch = answer.pop("touch")
        day = {"G1": 3, "G2": 4}[guide]
        assert (instant(touch.pop("at")), touch["kind"]) == (
            october(day),
            "subscribe" if guide == "G1" else "link",
        )
        assert instant(answer.pop("at")) == october(5 if guide == "G1" else 6)
        assert answer == {
            "order_id": w.order(brand, "eshop", order_no).id,
            "channel": "eshop",
            "order_no": order_no,
            "credited": True,
            "guide_id": brand.guides[guide],
            "guide_code": guide,
            "store_id": brand.stores["A1"],
            "store_code": "A1",
            "rule": "last_guide_touch",
            "window_days": 15,
            "amount_fen": GUIDE_PAID[guide],
        }
    return response


# --- commission -------------------------------------------------------------------------------------


def _world_statement(w: World, caller: str) -> dict[str, object]:
    """GUIDES_PERIOD's statement as the world wrote it, of the guides the caller sees."""
    brand = w.brand_of(caller)
    seen = _seen_guides(caller)
    rows = {
        "G1": {
            "orders": 1,
            "earned_fen": 1000,
            "clawed_back_fen": 0,
            "adjusted_fen": 0,
            "paid_out_fen": 0,
            "net_fen": 1000,
        },
        "G2": {
            "orders": 1,
            "earned_fen": 1500,
            "clawed_back_fen": 500,
            "adjusted_fen": 0,
            "paid_out_fen": 0,
            "net_fen": 1000,
        },
    }
    names = {"G1": "小周", "G2": "小吴"}
    with w.db.reading() as s:
        transfers = {
            (t.guide_id, t.code): t.id
            for t in s.scalars(select(Transfer).where(Transfer.tenant_id == brand.tenant_id))
            if t.order_id is not None
        }
    lines = [
        ("G1", october(7), "commission", GUIDE_EARNED["G1"]),
        ("G2", october(8), "commission", GUIDE_EARNED["G2"]),
        ("G2", october(10), "commission_clawback", -GUIDE_CLAWED_BACK),
    ]
    return {
        "period": GUIDES_PERIOD,
        "rows": [
            {
                "guide_id": brand.guides[g],
                "guide_code": g,
                "guide_name": names[g],
                "store_code": "A1",
                **rows[g],
            }
            for g in seen
        ],
        "total": {k: sum(rows[g][k] for g in seen) for k in rows["G1"]},
        "lines": [
            {
                "guide_id": brand.guides[g],
                "guide_code": g,
                "at": at.astimezone(UTC).isoformat(),
                "code": code,
                "amount_fen": amount,
                "channel": "eshop",
                "order_no": brand.guide_orders[g],
                "reason": None,
                "transfer_id": transfers[(brand.guides[g], code)],
            }
            for g, at, code, amount in lines
            if g in seen
        ],
    }


def call_statement(w: World, caller: str, _: str, ok: bool) -> httpx.Response:
    response: httpx.Response = w.client.get(
        "/api/v1/guides/commission/statement", params={"period": GUIDES_PERIOD}, headers=w.auth(caller)
    )
    if ok:
        answer = response.json()
        for line in answer["lines"]:
            _times_as_instants(line, "at")
        assert answer == _world_statement(w, caller)
    return response


def call_adjust(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    body = {"guide_code": _guide_code(target), "amount_fen": 300, "reason": "漏记一单"}
    response: httpx.Response = w.client.post(
        "/api/v1/guides/commission/adjustments", json=body, headers=write(w, caller)
    )
    if ok:
        brand = w.brand_of(caller)
        answer = response.json()
        with w.db.reading() as s:
            transfer = s.get(Transfer, answer["transfer_id"])
            assert transfer is not None
        assert (transfer.code, transfer.amount, transfer.guide_id, transfer.reason, transfer.actor) == (
            "commission_adjust",
            300,
            brand.guides[target],
            "漏记一单",
            label(w, caller),
        )
        assert instant(answer.pop("at")) == transfer.created_at
        assert answer == {
            "transfer_id": transfer.id,
            "guide_id": brand.guides[target],
            "guide_code": target,
            "amount_fen": 300,
            "reason": "漏记一单",
            "order_id": None,
        }
        assert w.audit_actions(brand.tenant_id, brand.guides[target])[-1] == "guides.commission_adjust"
    return response


def _dispute_view(w: World, dispute_id: str) -> dict[str, object]:
    with w.db.reading() as s:
        d = s.get(CommissionDispute, dispute_id)
        assert d is not None
        guide = s.get(Guide, d.guide_id)
        assert guide is not None
    return {
        "id": d.id,
        "guide_id": d.guide_id,
        "guide_code": guide.code,
        "period": d.period,
        "order_id": d.order_id,
        "claim": d.claim,
        "status": d.status,
        "resolution": d.resolution,
        "transfer_id": d.transfer_id,
        "raised_by": d.raised_by,
        "raised_at": d.created_at.isoformat(),
        "resolved_by": d.resolved_by,
        "resolved_at": d.resolved_at.isoformat() if d.resolved_at else None,
    }


def _instants(view: dict[str, object]) -> dict[str, object]:
    _times_as_instants(view, "raised_at", "resolved_at")
    return view


def call_dispute_raise(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    brand = w.brand_of(caller)
    body = {
        "guide_code": _guide_code(target),
        "period": GUIDES_PERIOD,
        "claim": GUIDE_CLAIM,
        "order": {"channel": "eshop", "order_no": brand.guide_orders["G1"]},
    }
    response: httpx.Response = w.client.post(
        "/api/v1/guides/commission/disputes", json=body, headers=write(w, caller)
    )
    if ok:
        answer = _instants(response.json())
        assert answer == _instants(_dispute_view(w, str(answer["id"])))
        assert (answer["guide_id"], answer["status"], answer["raised_by"]) == (
            brand.guides[target],
            "open",
            label(w, caller),
        )
        assert answer["order_id"] == w.order(brand, "eshop", brand.guide_orders["G1"]).id
        assert w.audit_actions(brand.tenant_id, str(answer["id"])) == ["guides.dispute_raise"]
    return response


def call_dispute_list(w: World, caller: str, _: str, ok: bool) -> httpx.Response:
    response: httpx.Response = w.client.get("/api/v1/guides/commission/disputes", headers=w.auth(caller))
    if ok:
        brand = w.brand_of(caller)
        seen = [brand.guides[g] for g in _seen_guides(caller)]
        with w.db.reading() as s:
            ids = s.scalars(
                select(CommissionDispute.id)
                .where(CommissionDispute.tenant_id == brand.tenant_id, CommissionDispute.guide_id.in_(seen))
                .order_by(CommissionDispute.created_at, CommissionDispute.id)
            ).all()
        assert [_instants(d) for d in response.json()] == [_instants(_dispute_view(w, i)) for i in ids]
        assert brand.guide_disputes["G1"] in ids
    return response


def call_dispute_resolve(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    if target == "unknown":
        dispute_id = UNKNOWN_DISPUTE
    elif ok:
        brand, guide = _target(w, target)
        with w.db.unit_of_work() as s:
            fresh = CommissionDispute(
                tenant_id=brand.tenant_id,
                guide_id=brand.guides[guide],
                period=GUIDES_PERIOD,
                claim=GUIDE_CLAIM,
                status="open",
                raised_by="system:test",
            )
            s.add(fresh)
            s.flush()
            dispute_id = fresh.id
    else:
        brand, guide = _target(w, target)
        dispute_id = brand.guide_disputes[guide]
    body = {"outcome": "adjust", "amount_fen": 200, "reason": "核实补发"}
    response: httpx.Response = w.client.post(
        f"/api/v1/guides/commission/disputes/{dispute_id}/resolve", json=body, headers=write(w, caller)
    )
    if ok:
        answer = _instants(response.json())
        assert answer == _instants(_dispute_view(w, dispute_id))
        assert (answer["status"], answer["resolution"], answer["resolved_by"]) == (
            "adjusted",
            "核实补发",
            label(w, caller),
        )
        with w.db.reading() as s:
            transfer = s.get(Transfer, answer["transfer_id"])
            assert transfer is not None
            assert (transfer.code, transfer.amount, transfer.guide_id) == (
                "commission_adjust",
                200,
                brand.guides[guide],
            )
    return response


def call_kpis(w: World, caller: str, _: str, ok: bool) -> httpx.Response:
    response: httpx.Response = w.client.get(
        "/api/v1/guides/kpis", params={"period": GUIDES_PERIOD, "by": "guide"}, headers=w.auth(caller)
    )
    if ok:
        brand = w.brand_of(caller)
        figures = {
            "G1": {"fans_added": 1, "members_bound": 1, "attributed_orders": 1, "commission_fen": 1000},
            "G2": {"fans_added": 0, "members_bound": 0, "attributed_orders": 1, "commission_fen": 1000},
        }
        names = {"G1": "小周", "G2": "小吴"}
        expected = sorted(
            (
                {
                    "key": brand.guides[g],
                    "code": g,
                    "name": names[g],
                    "attributed_gmv_fen": GUIDE_PAID[g],
                    **figures[g],
                }
                for g in _seen_guides(caller)
            ),
            key=lambda row: str(row["key"]),
        )
        assert response.json() == {"period": GUIDES_PERIOD, "by": "guide", "rows": expected}
    return response


ENDPOINTS = [
    Endpoint(
        "POST", "/api/v1/guides/qr-codes", GUIDE_USERS, 201, call_qr_create, CODE_TARGETS, SEES_GUIDE_CODES
    ),
    Endpoint("GET", "/api/v1/guides/qr-codes", GUIDE_USERS, 200, call_qr_list),
    Endpoint(
        "GET",
        "/api/v1/guides/qr-codes/{qr_code_id}",
        GUIDE_USERS,
        200,
        call_qr_get,
        GUIDE_TARGETS,
        SEES_GUIDE_OBJECTS,
    ),
    Endpoint(
        "GET",
        "/api/v1/guides/qr-codes/{qr_code_id}.png",
        GUIDE_USERS,
        200,
        call_qr_png,
        GUIDE_TARGETS,
        SEES_GUIDE_OBJECTS,
    ),
    Endpoint(
        "GET",
        "/api/v1/guides/qr-codes/{qr_code_id}.svg",
        GUIDE_USERS,
        200,
        call_qr_svg,
        GUIDE_TARGETS,
        SEES_GUIDE_OBJECTS,
    ),
    Endpoint(
        "GET",
        "/api/v1/guides/members/{member_id}",
        GUIDE_USERS,
        200,
        call_member_guide,
        MEMBER_TARGETS,
        SEES_MEMBERS,
    ),
    Endpoint(
        "POST",
        "/api/v1/guides/members/{member_id}/guide",
        GUIDE_ADMINS,
        200,
        call_assign,
        MEMBER_TARGETS,
        SEES_MEMBERS,
    ),
    Endpoint(
        "POST",
        "/api/v1/guides/hand-over",
        GUIDE_ADMINS,
        200,
        call_hand_over,
        ("G2", "unknown"),
        {caller: frozenset({"G2"}) for caller in GUIDE_ADMINS},
    ),
    Endpoint("POST", "/api/v1/guides/touches", GUIDE_USERS, 201, call_touch, MEMBER_TARGETS, SEES_MEMBERS),
    Endpoint(
        "GET",
        "/api/v1/guides/attribution",
        GUIDE_USERS,
        200,
        call_attribution,
        GUIDE_TARGETS,
        SEES_GUIDE_OBJECTS,
    ),
    Endpoint("GET", "/api/v1/guides/commission/statement", GUIDE_USERS, 200, call_statement),
    Endpoint(
        "POST",
        "/api/v1/guides/commission/adjustments",
        GUIDE_ADMINS,
        201,
        call_adjust,
        CODE_TARGETS,
        {caller: BOTH for caller in GUIDE_ADMINS},
    ),
    Endpoint(
        "POST",
        "/api/v1/guides/commission/disputes",
        GUIDE_USERS,
        201,
        call_dispute_raise,
        CODE_TARGETS,
        SEES_GUIDE_CODES,
    ),
    Endpoint("GET", "/api/v1/guides/commission/disputes", GUIDE_USERS, 200, call_dispute_list),
    Endpoint(
        "POST",
        "/api/v1/guides/commission/disputes/{dispute_id}/resolve",
        GUIDE_ADMINS,
        200,
        call_dispute_resolve,
        GUIDE_TARGETS,
        {caller: SEES_GUIDE_OBJECTS[caller] for caller in GUIDE_ADMINS},
    ),
    Endpoint("GET", "/api/v1/guides/kpis", GUIDE_USERS, 200, call_kpis),
]
