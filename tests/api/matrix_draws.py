"""Route matrix rows: lucky draws.

Each brand gets its draws the first time a cell that should succeed runs (``_draws``): "enter" (open,
free entries, every kind of prize, pass codes), "pickup" (open, only goods, with one entry of every
member target of the world, whose pickup code the refused collect cells name), "draft" (never opened)
and "closed" (three entries of a new member, then closed). The world's own members only ever win goods
here, so their points and coupons stay what the other domains' rows expect. Cells that should be refused
only read what is there, so they write nothing; the matrix's first draw cell (create, by hq_admin)
succeeds, so they find the draws made (run alone, a refused cell names a draw that does not exist, which
answers alike).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import httpx
from sqlalchemy import select

from datong.coupons import draws, lucky_draws
from datong.coupons.codes import display_code
from datong.coupons.models import Coupon, Draw, DrawEntry, DrawPassCode, DrawPrize
from tests.api.conftest import AWAY, COUPON_TEMPLATE, MEMBERS, Brand, World, instant
from tests.api.matrix import (
    COUPON_ADMINS,
    COUPON_READERS,
    COUPON_WRITERS,
    MEMBER_TARGETS,
    POINTS_TARGETS,
    SEES_AWAY,
    SEES_MEMBERS,
    SEES_OWN_BRAND,
    Endpoint,
    fresh_like,
    fresh_shopper,
    target_member_id,
    well_formed,
    write,
)

DRAW_TARGETS = ("own", "other_brand", "unknown")
UNKNOWN_PICKUP = well_formed("ZZZZZZZZZZZZ")
ACTOR = "system:test"
PRIZES = [
    {
        "code": "cpn",
        "name": "新会员券",
        "kind": "coupon",
        "weight": 1,
        "coupon_template": COUPON_TEMPLATE["code"],
    },
    {"code": "pts", "name": "20积分", "kind": "points", "weight": 1, "points": 20},
    {"code": "bag", "name": "帆布袋", "kind": "goods", "weight": 1},
    {"code": "none", "name": "谢谢参与", "kind": "none", "weight": 1},
]


@dataclass
class BrandDraws:
    codes: dict[str, str]  # enter | pickup | draft | closed → the draw's code
    pickups: dict[str, str] = field(default_factory=dict)  # member target → its pickup code


_MADE: dict[int, tuple[World, dict[str, BrandDraws]]] = {}


def _make(w: World, brand: Brand, code: str, *, opened: bool = True, **fields: object) -> None:
    data = {"code": code, "name": f"抽奖 {code}", "free_per_day": 100, "prizes": PRIZES} | fields
    with w.db.unit_of_work() as s:
        lucky_draws.create_draw(s, tenant_id=brand.tenant_id, keyring=w.keyring, actor=ACTOR, data=data)
        if opened:
            lucky_draws.open_draw(s, tenant_id=brand.tenant_id, code=code, actor=ACTOR)


def _enter(w: World, brand: Brand, code: str, member_id: str) -> lucky_draws.Entered:
    with w.db.unit_of_work() as s:
        return lucky_draws.enter_draw(
            s,
            tenant_id=brand.tenant_id,
            keyring=w.keyring,
            code=code,
            member_id=member_id,
            source="free",
            actor=ACTOR,
        )


def _draws(w: World, make: bool) -> dict[str, BrandDraws] | None:
    """Every brand's draws: made when ``make`` (a cell that succeeds), else only if made before."""
    found = _MADE.get(id(w))
    if found is not None and found[0] is w:
        return found[1]
    if not make:
        return None
    made: dict[str, BrandDraws] = {}
    for key, brand in w.brands.items():
        codes = {kind: f"{kind}-{brand.code}" for kind in ("enter", "pickup", "draft", "closed")}
        _make(w, brand, codes["enter"], pass_codes=True, free_per_day=1)
        _make(w, brand, codes["pickup"], prizes=[PRIZES[2]])
        _make(w, brand, codes["draft"], opened=False)
        _make(w, brand, codes["closed"])
        entrant = w.fresh_member(brand, store="A1")  # not a world member: its points and coupons stay exact
        for _ in range(3):
            _enter(w, brand, codes["closed"], entrant)
        with w.db.unit_of_work() as s:
            lucky_draws.close_draw(
                s, tenant_id=brand.tenant_id, keyring=w.keyring, code=codes["closed"], actor=ACTOR
            )
        made[key] = BrandDraws(codes)
        # Brand 1's member targets each won goods once; brand 2's a1_guide is the "other_brand" target.
        targets = (
            {**{t: brand.members[t] for t in MEMBERS}, **brand.away}
            if key == "b1"
            else {"other_brand": brand.members["a1_guide"]}
        )
        for target, member_id in targets.items():
            pickup = _enter(w, brand, codes["pickup"], member_id).entry.pickup_code
            assert pickup is not None
            made[key].pickups[target] = pickup
    _MADE[id(w)] = (w, made)
    return made


def _code(w: World, target: str, kind: str, make: bool) -> str:
    """The code of a draw of the target's brand ("own" is brand 1's)."""
    made = _draws(w, make)
    if target == "unknown" or made is None:
        return f"no-such-draw-{kind}"
    return made["b2" if target == "other_brand" else "b1"].codes[kind]


def _seed(w: World, draw: Draw) -> bytes:
    text = w.keyring.decrypt(
        draw.seed_enc, tenant_id=draw.tenant_id, table="draw", row_id=draw.id, column="seed_enc"
    )
    return bytes.fromhex(text)


def _draw(w: World, brand: Brand, code: str) -> Draw:
    with w.db.reading() as s:
        found = s.scalar(select(Draw).where(Draw.tenant_id == brand.tenant_id, Draw.code == code))
        assert found is not None, code
        return found


def _draw_target(caller: str) -> str:
    return "other_brand" if caller == "other_brand_admin" else "own"


def _view_of(w: World, entry: DrawEntry) -> dict[str, object]:
    """An entry as the API shows it, read from the database by hand; without its time (``at``)."""
    prize = next(p for p in PRIZES if p["code"] == entry.prize_code)
    coupon_code = None
    if entry.coupon_id:
        with w.db.reading() as s:
            coupon = s.get(Coupon, entry.coupon_id)
            assert coupon is not None
            coupon_code = coupon.code
    return {
        "id": entry.id,
        "entry_no": entry.entry_no,
        "member_id": entry.member_id,
        "source": entry.source,
        "day": entry.day.isoformat(),
        "prize": {
            "code": prize["code"],
            "name": prize["name"],
            "kind": prize["kind"],
            "points": prize.get("points"),
        },
        "coupon_code": coupon_code,
        "pickup_code": entry.pickup_code,
        "pickup_display": display_code(entry.pickup_code) if entry.pickup_code else None,
        "collected_at": entry.collected_at.isoformat() if entry.collected_at else None,
        "collected_store_id": entry.collected_store_id,
    }


def _entries(w: World, draw: Draw, member_id: str) -> list[DrawEntry]:
    with w.db.reading() as s:
        return list(
            s.scalars(
                select(DrawEntry)
                .where(DrawEntry.draw_id == draw.id, DrawEntry.member_id == member_id)
                .order_by(DrawEntry.entry_no)
            )
        )


def call_draw_create(w: World, caller: str, _: str, ok: bool) -> httpx.Response:
    if ok:
        _draws(w, True)
    code = f"d-{w.fresh_card()}"
    body = {"code": code, "name": "周年庆抽奖", "free_per_day": 1, "per_member_limit": 3, "prizes": PRIZES}
    response: httpx.Response = w.client.post("/api/v1/draws", json=body, headers=w.auth(caller))
    if ok:
        brand = w.brand_of(caller)
        draw = _draw(w, brand, code)
        assert response.json() == {
            "id": draw.id,
            "code": code,
            "name": "周年庆抽奖",
            "status": "draft",
            "opens_at": None,
            "closes_at": None,
            "pass_codes": False,
            "points_cost": None,
            "free_per_day": 1,
            "per_member_limit": 3,
            "per_member_daily_limit": None,
            "commitment": hashlib.sha256(_seed(w, draw)).hexdigest(),
            "seed": None,
            "entry_count": 0,
            "opened_at": None,
            "closed_at": None,
            "prizes": [
                {"position": i, "stock": None, "remaining": None, "coupon_template": None, "points": None} | p
                for i, p in enumerate(PRIZES)
            ],
        }
        assert w.audit_actions(brand.tenant_id, draw.id) == ["draw.create"]
    return response


def call_draw_open(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    if ok:
        code = f"o-{w.fresh_card()}"
        _draws(w, True)
        _make(w, w.brand_of(caller), code, opened=False)
    else:
        code = _code(w, target, "draft", False)
    response: httpx.Response = w.client.post(f"/api/v1/draws/{code}/open", headers=w.auth(caller))
    if ok:
        brand = w.brand_of(caller)
        draw = _draw(w, brand, code)
        answer = response.json()
        assert instant(answer["opened_at"]) == draw.opened_at
        assert (answer["id"], answer["status"], answer["commitment"], answer["seed"]) == (
            draw.id,
            "open",
            draw.commitment,
            None,
        )
        assert w.audit_actions(brand.tenant_id, draw.id) == ["draw.create", "draw.open"]
    return response


def call_draw_close(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    if ok:
        code = f"c-{w.fresh_card()}"
        _draws(w, True)
        _make(w, w.brand_of(caller), code)
    else:
        code = _code(w, target, "enter", False)
    response: httpx.Response = w.client.post(f"/api/v1/draws/{code}/close", headers=w.auth(caller))
    if ok:
        brand = w.brand_of(caller)
        draw = _draw(w, brand, code)
        answer = response.json()
        assert instant(answer["closed_at"]) == draw.closed_at
        assert (answer["id"], answer["status"], answer["seed"]) == (draw.id, "closed", _seed(w, draw).hex())
        assert hashlib.sha256(bytes.fromhex(answer["seed"])).hexdigest() == draw.commitment
        assert w.audit_actions(brand.tenant_id, draw.id) == ["draw.create", "draw.open", "draw.close"]
    return response


def call_draw_pass_codes(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    code = _code(w, _draw_target(caller) if ok else target, "enter", ok)
    batch = f"run-{w.fresh_card()}"
    response: httpx.Response = w.client.post(
        f"/api/v1/draws/{code}/pass-codes", json={"count": 2, "batch": batch}, headers=w.auth(caller)
    )
    if ok:
        brand = w.brand_of(caller)
        answer = response.json()
        assert (answer["draw"], answer["batch"], answer["count"], len(answer["codes"])) == (code, batch, 2, 2)
        with w.db.reading() as s:
            stored = set(s.scalars(select(DrawPassCode.code_hash).where(DrawPassCode.batch == batch)))
        expected = {
            w.keyring.blind_index(c, tenant_id=brand.tenant_id, kind="draw_pass_code")
            for c in answer["codes"]
        }
        assert stored == expected
    return response


def call_draw_enter(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    code = _code(w, _draw_target(caller), "enter", ok)
    member_id = fresh_like(w, target) if ok else target_member_id(w, target)
    response: httpx.Response = w.client.post(
        f"/api/v1/draws/{code}/entries",
        json={"member_id": member_id, "source": "free"},
        headers=write(w, caller),
    )
    if ok:
        draw = _draw(w, w.brand_of(caller), code)
        [entry] = _entries(w, draw, member_id)
        bands = [draws.Prize(str(p["code"]), 1, None) for p in PRIZES]
        assert entry.prize_code == draws.outcome(_seed(w, draw), draw.id, entry.entry_no, bands, {})
        answer = response.json()
        assert instant(answer.pop("at")) == entry.at
        assert answer == {**_view_of(w, entry), "draw": code, "points_spent": 0}
        coupons = [(c.source, c.issue_key) for c in w.coupons_of(member_id)]
        points = [(t.code, t.amount) for t in w.moves(member_id)]
        assert coupons == (
            [("prize", f"draw:{draw.id}:{entry.entry_no}")] if entry.prize_code == "cpn" else []
        )
        assert points == ([("adjust", 20)] if entry.prize_code == "pts" else [])
    return response


def call_draw_member(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    code = _code(w, _draw_target(caller), "pickup", ok)
    member_id = target_member_id(w, target)
    response: httpx.Response = w.client.get(
        f"/api/v1/draws/{code}/members/{member_id}", headers=w.auth(caller)
    )
    if ok:
        entries = _entries(w, _draw(w, w.brand_of(caller), code), member_id)
        answer = response.json()
        assert [instant(e.pop("at")) for e in answer["entries"]] == [e.at for e in entries] and len(
            entries
        ) == 1
        assert answer == {"draw": code, "member_id": member_id, "entries": [_view_of(w, e) for e in entries]}
    return response


def _collect_store(target: str) -> str:
    """Where the target collects: at its home store; AWAY members at B1; online members at D1."""
    if target in AWAY:
        return "B1"
    if target in ("other_brand", "unknown"):
        return "A1"
    return MEMBERS[target][0] or "D1"


def call_draw_collect(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    store = _collect_store(target)
    if ok:
        made = _draws(w, True)
        assert made is not None
        who = fresh_shopper(w, target)  # a new member like the target, who won goods
        brand = who.brand
        pickup_draw = made["b2" if brand is w.b2 else "b1"].codes["pickup"]
        pickup = _enter(w, brand, pickup_draw, who.member_id).entry.pickup_code
        assert pickup is not None
    else:
        made = _draws(w, False)
        side = "b2" if target == "other_brand" else "b1"
        pickup = made[side].pickups.get(target, UNKNOWN_PICKUP) if made is not None else UNKNOWN_PICKUP
    response: httpx.Response = w.client.post(
        f"/api/v1/draws/pickups/{display_code(pickup).lower()}/collect",
        json={"store_code": store},
        headers=write(w, caller),
    )
    if ok:
        with w.db.reading() as s:
            entry = s.scalar(select(DrawEntry).where(DrawEntry.pickup_code == pickup))
            assert entry is not None
        assert (entry.collected_store_id, entry.collected_at is not None) == (brand.stores[store], True)
        answer = response.json()
        assert instant(answer.pop("at")) == entry.at
        assert answer == {**_view_of(w, entry), "store_code": store}
        assert w.audit_actions(brand.tenant_id, entry.id) == ["draw.prize_collect"]
    return response


def call_draw_audit(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    code = _code(w, target, "closed", ok)
    response: httpx.Response = w.client.get(f"/api/v1/draws/{code}/audit", headers=w.auth(caller))
    if ok:
        draw = _draw(w, w.brand_of(caller), code)
        with w.db.reading() as s:
            log = [
                [e.entry_no, e.prize_code]
                for e in s.scalars(
                    select(DrawEntry).where(DrawEntry.draw_id == draw.id).order_by(DrawEntry.entry_no)
                )
            ]
        answer = response.json()
        assert answer == {
            "draw_id": draw.id,
            "code": code,
            "status": "closed",
            "commitment": draw.commitment,
            "prizes": [
                {"position": i, "code": p["code"], "weight": 1, "stock": None} for i, p in enumerate(PRIZES)
            ],
            "log": log,
            "seed": _seed(w, draw).hex(),
        }
        assert len(log) == 3 and draws.replay_published(answer) == []
    return response


def call_draw_stats(w: World, caller: str, target: str, ok: bool) -> httpx.Response:
    code = _code(w, target, "pickup", ok)
    response: httpx.Response = w.client.get(f"/api/v1/draws/{code}/stats", headers=w.auth(caller))
    if ok:
        draw = _draw(w, w.brand_of(caller), code)
        with w.db.reading() as s:
            rows = list(s.scalars(select(DrawEntry).where(DrawEntry.draw_id == draw.id)))
            prize = s.scalar(select(DrawPrize).where(DrawPrize.draw_id == draw.id))
            assert prize is not None
        collected = sum(1 for e in rows if e.collected_at is not None)
        assert response.json() == {
            "code": code,
            "status": "open",
            "entries": len(rows),
            "members": len({e.member_id for e in rows}),
            "by_source": {"pass_code": 0, "points": 0, "free": len(rows)},
            "prizes": [
                {
                    "code": "bag",
                    "name": "帆布袋",
                    "kind": "goods",
                    "stock": None,
                    "remaining": None,
                    "won": len(rows),
                    "collected": collected,
                }
            ],
        }
    return response


ENDPOINTS = [
    Endpoint("POST", "/api/v1/draws", COUPON_ADMINS, 201, call_draw_create),
    Endpoint(
        "POST", "/api/v1/draws/{code}/open", COUPON_ADMINS, 200, call_draw_open, DRAW_TARGETS, SEES_OWN_BRAND
    ),
    Endpoint(
        "POST",
        "/api/v1/draws/{code}/close",
        COUPON_ADMINS,
        200,
        call_draw_close,
        DRAW_TARGETS,
        SEES_OWN_BRAND,
    ),
    Endpoint(
        "POST",
        "/api/v1/draws/{code}/pass-codes",
        COUPON_ADMINS,
        201,
        call_draw_pass_codes,
        DRAW_TARGETS,
        SEES_OWN_BRAND,
    ),
    Endpoint(
        "POST",
        "/api/v1/draws/{code}/entries",
        COUPON_WRITERS,
        200,
        call_draw_enter,
        MEMBER_TARGETS,
        SEES_MEMBERS,
    ),
    Endpoint(
        "GET",
        "/api/v1/draws/{code}/members/{member_id}",
        COUPON_READERS,
        200,
        call_draw_member,
        MEMBER_TARGETS,
        SEES_MEMBERS,
    ),
    Endpoint(
        "POST",
        "/api/v1/draws/pickups/{pickup_code}/collect",
        COUPON_WRITERS,
        200,
        call_draw_collect,
        POINTS_TARGETS,
        SEES_AWAY,
    ),
    Endpoint(
        "GET",
        "/api/v1/draws/{code}/audit",
        COUPON_READERS,
        200,
        call_draw_audit,
        DRAW_TARGETS,
        SEES_OWN_BRAND,
    ),
    Endpoint(
        "GET",
        "/api/v1/draws/{code}/stats",
        COUPON_READERS,
        200,
        call_draw_stats,
        DRAW_TARGETS,
        SEES_OWN_BRAND,
    ),
]
