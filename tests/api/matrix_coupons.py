"""Route matrix rows: coupons."""

from __future__ import annotations

import csv
import io
import tempfile
import time
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from datong.core.clock import utcnow
from datong.coupons import service as coupons_service
from datong.coupons.bulk import run_bulk_issue
from datong.coupons.models import Coupon, CouponAllocation, CouponRedemption, CouponTemplate
from tests.api.conftest import (
    AWAY,
    CALLERS,
    COUPON_TEMPLATE,
    MEMBERS,
    STORE_CODES,
    WORLD_COUPON_ORDER_FEN,
    Brand,
    World,
    instant,
)
from tests.api.matrix import (
    COUPON_ADMINS,
    COUPON_READERS,
    COUPON_WRITERS,
    MEMBER_TARGETS,
    POINTS_TARGETS,
    SEES_AWAY,
    SEES_MEMBERS,
    SEES_OWN_BRAND,
    UNKNOWN_CODE,
    UNKNOWN_MEMBER,
    UNKNOWN_REDEMPTION,
    Endpoint,
    Shopper,
    brand_and_label,
    fresh_like,
    fresh_shopper,
    label,
    shopper,
    target_member_id,
    write,
)

# --- coupons --------------------------------------------------------------------------------------


def _coupon_shopper(w: World, target: str) -> Shopper:
    """As ``shopper``: the member a coupon target names and where it shops (an unknown one at A1)."""
    return shopper(w, target)


def _world_coupon(w: World, target: str) -> str:
    """The target's unused coupon in the world (a code no coupon has for "unknown")."""
    if target == "unknown":
        return UNKNOWN_CODE
    if target in AWAY:
        return w.b1.coupons[target]
    brand, label = brand_and_label(w, target)
    return brand.coupons[label]


def _world_redemption(w: World, target: str) -> str:
    if target == "unknown":
        return UNKNOWN_REDEMPTION
    if target in AWAY:
        return w.b1.coupon_redemptions[target]
    brand, label = brand_and_label(w, target)
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
            "region_codes": [],
            "agent_codes": [],
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
            "per_day_limit": None,
            "restore_on_refund": True,
            "active": True,
        }
        assert w.audit_actions(brand.tenant_id, answer["id"]) == ["coupon.template_create"]
    return response


def call_coupon_issue(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    member_id = fresh_like(w, target) if ok else target_member_id(w, target)
    body = {"member_id": member_id, "template": COUPON_TEMPLATE["code"], "issue_key": f"m-{w.fresh_card()}"}
    # An agent manager is bound to two stores and no one of them: it names the store it issues through
    # (the member's own, where it may act); the other callers issue through their own store or none.
    store = MEMBERS[brand_and_label(w, target)[1]][0] if target != "unknown" else "A1"
    if caller == "agent_manager":
        body["store_code"] = store
    response: httpx.Response = w.client.post("/api/v1/coupons/issue", json=body, headers=write(w, caller))
    if ok:
        [coupon] = w.coupons_of(member_id)
        assert (coupon.status, coupon.source, coupon.issue_key) == ("issued", "api", body["issue_key"])
        brand = w.brand_of(caller)
        through = {"agent_manager": store, "store_manager": "A1", "store_key": "D1"}.get(caller)
        assert coupon.store_id == (brand.stores[through] if through else None)
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
        who = fresh_shopper(w, target)
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
    response: httpx.Response = w.client.post("/api/v1/coupons/redeem", json=body, headers=write(w, caller))
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
        who = fresh_shopper(w, target)
        code = w.issue_coupon(who.brand, who.member_id).code
        redemption_id = w.redeem_coupon(who.brand, code, store=who.store).id
    else:
        redemption_id = _world_redemption(w, target)
    response: httpx.Response = w.client.post(
        f"/api/v1/coupons/redemptions/{redemption_id}/reverse", headers=write(w, caller)
    )
    if ok:
        coupon = w.coupon_by_code(who.brand, code)
        [r] = w.coupon_redemptions(coupon.id)
        assert r.reversed_at is not None
        assert (coupon.status, coupon.redeemed_at, r.id) == ("issued", None, redemption_id)
        assert r.reversed_by == label(w, caller)
        answer = response.json()
        assert instant(answer.pop("reversed_at")) == r.reversed_at
        assert answer == {"redemption_id": r.id, "coupon_id": coupon.id, "code": code, "status": "issued"}
    return response


# --- allocations, bulk issuing, reports ---------------------------------------------------------------

TEMPLATE_TARGETS = ("welcome", "unknown")  # the world's template (each brand has its own), and no such code
SEES_TEMPLATE: Mapping[str, frozenset[str]] = {caller: frozenset({"welcome"}) for caller in CALLERS}
UNKNOWN_COUPON_BATCH = "cib_00000000000000000000000000"
# The stores whose rows a caller sees in a store report (brand 2's administrator: all of brand 2's).
REPORT_STORES: Mapping[str, frozenset[str]] = {
    "hq_admin": frozenset(STORE_CODES),
    "hq_operator": frozenset(STORE_CODES),
    "pos_key": frozenset(STORE_CODES),
    "agent_manager": frozenset({"A1", "A2"}),
    "store_manager": frozenset({"A1"}),
    "store_key": frozenset({"D1"}),
    "guide": frozenset(),
    "other_brand_admin": frozenset(STORE_CODES),
}
_BATCHES: dict[int, dict[str, str]] = {}  # id(world) → brand label → a finished batch with one bad row


def wait_for_batch(w: World, caller: str, batch_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """A bulk issue runs after its upload answers: its state once it is no longer running."""
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = w.client.get(
            f"/api/v1/coupons/batches/{batch_id}", headers=w.auth(caller)
        ).json()
        if body["status"] != "running":
            return body
        assert time.monotonic() < deadline, f"coupon batch {batch_id} still running after {timeout}s"
        time.sleep(0.02)


def _world_batches(w: World, *, create: bool) -> dict[str, str]:
    """A finished bulk issue in each brand (one coupon of "welcome", one row of an unknown member),
    made by the first successful call that needs one. A refused call only uses them: run alone, before
    any was made, it names an unknown batch, which is refused the same way and changes nothing either."""
    made = _BATCHES.get(id(w))
    if made is None and create:
        made = _BATCHES[id(w)] = {}
        for label, brand in (("b1", w.b1), ("b2", w.b2)):
            member_id = w.fresh_member(brand, store="A1")
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "list.csv"
                path.write_text(f"member_id\n{member_id}\nmem_nobody\n", encoding="utf-8")
                batch = run_bulk_issue(
                    w.db,
                    w.keyring,
                    tenant_id=brand.tenant_id,
                    template_code="welcome",
                    path=path,
                    actor="system:test",
                )
            assert (batch.rows_issued, batch.rows_failed) == (1, 1)
            made[label] = batch.id
    return made or {}


def _batch_target(w: World, target: str, ok: bool) -> str:
    made = _world_batches(w, create=ok)
    return {"own": made.get("b1"), "other_brand": made.get("b2")}.get(target) or UNKNOWN_COUPON_BATCH


def call_coupon_allocation(w: World, caller: str, _: str, ok: bool) -> httpx.Response:
    code = COUPON_TEMPLATE["code"]
    if ok:  # a template of its own: the world's "welcome" has no allocations, and keeps none
        brand = w.brand_of(caller)
        code = f"T-{w.fresh_card()}"
        with w.db.unit_of_work() as s:
            coupons_service.create_template(
                s, tenant_id=brand.tenant_id, actor="system:test", code=code, name="x", kind="cash_off",
                amount_fen=100, valid_days=7, total_quantity=100,
            )  # fmt: skip
    response: httpx.Response = w.client.put(
        f"/api/v1/coupons/templates/{code}/allocations/A1", json={"quantity": 10}, headers=w.auth(caller)
    )
    if ok:
        assert response.json() == {"template": code, "store_code": "A1", "quantity": 10, "issued": 0}
        with w.db.reading() as s:
            [allocation] = s.scalars(
                select(CouponAllocation).join(CouponTemplate).where(CouponTemplate.code == code)
            )
            assert (allocation.store_id, allocation.quantity) == (brand.stores["A1"], 10)
        assert w.audit_actions(brand.tenant_id, allocation.template_id)[-1] == "coupon.allocation_set"
    return response


def call_coupon_upload(w: World, caller: str, _: str, ok: bool) -> httpx.Response:
    member_id = w.fresh_member(w.brand_of(caller), store="A1") if ok else UNKNOWN_MEMBER
    response: httpx.Response = w.client.post(
        "/api/v1/coupons/batches",
        data={"template": COUPON_TEMPLATE["code"]},
        files={"file": (f"{w.fresh_card()}.csv", f"member_id\n{member_id}\n".encode(), "text/csv")},
        headers=w.auth(caller),
    )
    if ok:
        done = wait_for_batch(w, caller, response.json()["id"])
        assert (done["status"], done["rows_issued"], done["rows_failed"]) == ("done", 1, 0)
        [coupon] = w.coupons_of(member_id)
        assert (coupon.source, coupon.issue_key) == ("bulk", f"bulk:{done['id']}:1")
    return response


def call_coupon_batch(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    batch_id = _batch_target(w, target, ok)
    response: httpx.Response = w.client.get(f"/api/v1/coupons/batches/{batch_id}", headers=w.auth(caller))
    if ok:
        body = response.json()
        assert (body["id"], body["template"], body["status"]) == (batch_id, "welcome", "done")
        assert (body["rows_seen"], body["rows_issued"], body["rows_already"], body["rows_failed"]) == (
            2,
            1,
            0,
            1,
        )
    return response


def call_coupon_batch_errors(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    batch_id = _batch_target(w, target, ok)
    response: httpx.Response = w.client.get(
        f"/api/v1/coupons/batches/{batch_id}/errors", headers=w.auth(caller)
    )
    if ok:
        rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
        assert rows == [
            ["row_no", "field", "reason", "row"],
            ["2", "member_id", "no member mem_nobody", "mem_nobody"],
        ]
        assert w.audit_actions(w.brand_of(caller).tenant_id, batch_id)[-1] == "coupon.bulk_errors_export"
    return response


def _welcome_code(target: str) -> str:
    return COUPON_TEMPLATE["code"] if target == "welcome" else "no-such-template"


def _welcome_figures(w: World, brand: Brand) -> tuple[int, int, int]:
    """(issued, redeemed and not reversed, the GMV of their orders) of the brand's "welcome", counted
    here by hand (every redemption in the world is on an order of its own)."""
    with w.db.reading() as s:
        template_id = s.scalar(
            select(CouponTemplate.id).where(
                CouponTemplate.tenant_id == brand.tenant_id, CouponTemplate.code == COUPON_TEMPLATE["code"]
            )
        )
        issued = s.scalar(select(func.count()).select_from(Coupon).where(Coupon.template_id == template_id))
        redeemed, gmv = s.execute(
            select(func.count(), func.coalesce(func.sum(CouponRedemption.order_fen), 0))
            .join(Coupon, Coupon.id == CouponRedemption.coupon_id)
            .where(Coupon.template_id == template_id, CouponRedemption.reversed_at.is_(None))
        ).one()
    return int(issued or 0), int(redeemed), int(gmv)


def call_coupon_report(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    response: httpx.Response = w.client.get(
        f"/api/v1/coupons/templates/{_welcome_code(target)}/report", headers=w.auth(caller)
    )
    if ok:
        issued, redeemed, gmv = _welcome_figures(w, w.brand_of(caller))
        body = response.json()
        assert body["since"] is None and instant(body["until"]) <= utcnow()
        assert (body["template"], body["name"], body["issued"], body["redeemed"], body["expired"]) == (
            COUPON_TEMPLATE["code"],
            COUPON_TEMPLATE["name"],
            issued,
            redeemed,
            0,
        )
        assert (body["redemption_rate"], body["gmv_fen"], body["average_with_fen"]) == (
            round(redeemed / issued, 4),
            gmv,
            round(gmv / redeemed),
        )
    return response


def call_coupon_store_report(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    response: httpx.Response = w.client.get(
        f"/api/v1/coupons/templates/{_welcome_code(target)}/stores", headers=w.auth(caller)
    )
    if ok:
        brand = w.brand_of(caller)
        codes = {v: k for k, v in brand.stores.items()}
        with w.db.reading() as s:
            welcome = select(CouponTemplate.id).where(
                CouponTemplate.tenant_id == brand.tenant_id, CouponTemplate.code == COUPON_TEMPLATE["code"]
            )
            given = s.execute(
                select(Coupon.store_id, func.count())
                .where(Coupon.template_id.in_(welcome.scalar_subquery()), Coupon.store_id.is_not(None))
                .group_by(Coupon.store_id)
            ).all()
            honoured = s.execute(
                select(CouponRedemption.store_id, func.count())
                .join(Coupon, Coupon.id == CouponRedemption.coupon_id)
                .where(
                    Coupon.template_id.in_(welcome.scalar_subquery()),
                    CouponRedemption.reversed_at.is_(None),
                    CouponRedemption.store_id.is_not(None),
                )
                .group_by(CouponRedemption.store_id)
            ).all()
        issued = {codes[k]: int(n) for k, n in given}
        redeemed = {codes[k]: int(n) for k, n in honoured}
        seen = sorted((set(issued) | set(redeemed)) & REPORT_STORES[caller])
        body = response.json()
        assert body["template"] == COUPON_TEMPLATE["code"]
        assert [(r["store_code"], r["issued"], r["redeemed"]) for r in body["stores"]] == [
            (code, issued.get(code, 0), redeemed.get(code, 0)) for code in seen
        ]
    return response


ENDPOINTS = [
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
    Endpoint(
        "PUT",
        "/api/v1/coupons/templates/{code}/allocations/{store_code}",
        COUPON_ADMINS,
        200,
        call_coupon_allocation,
    ),
    Endpoint("POST", "/api/v1/coupons/batches", COUPON_ADMINS, 202, call_coupon_upload),
    Endpoint(
        "GET",
        "/api/v1/coupons/batches/{batch_id}",
        COUPON_ADMINS,
        200,
        call_coupon_batch,
        ("own", "other_brand", "unknown"),
        SEES_OWN_BRAND,
    ),
    Endpoint(
        "GET",
        "/api/v1/coupons/batches/{batch_id}/errors",
        COUPON_ADMINS,
        200,
        call_coupon_batch_errors,
        ("own", "other_brand", "unknown"),
        SEES_OWN_BRAND,
    ),
    Endpoint(
        "GET",
        "/api/v1/coupons/templates/{code}/report",
        COUPON_ADMINS,
        200,
        call_coupon_report,
        TEMPLATE_TARGETS,
        SEES_TEMPLATE,
    ),
    Endpoint(
        "GET",
        "/api/v1/coupons/templates/{code}/stores",
        COUPON_READERS,
        200,
        call_coupon_store_report,
        TEMPLATE_TARGETS,
        SEES_TEMPLATE,
    ),
]
