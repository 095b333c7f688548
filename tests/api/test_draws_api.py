"""The lucky draws API over HTTP, on both backends: a draw set up by HQ, entries by every way in with
their limits and Idempotency-Keys, goods collected once at the caller's store, the audit before and
after the draw closes, and refusals that name the field at fault and change nothing.

Every test makes draws and members of its own, so the figures below are exact.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select

from datong.coupons import draws
from datong.coupons.models import Draw, DrawEntry, DrawPassCode, DrawPrize
from tests.api.calls import answer, refused, write
from tests.api.conftest import World, instant

DRAWS = "/api/v1/draws"


def draw_state(w: World, code: str) -> dict[str, Any]:
    """What a refused call on brand 1's draw ``code`` could change: the draw itself (status, entry count,
    times, revealed seed), each prize's stock left, each pass code's use and each entry's collection."""
    with w.db.reading() as s:
        draw = s.scalar(select(Draw).where(Draw.tenant_id == w.b1.tenant_id, Draw.code == code))
        assert draw is not None, code
        prizes = s.scalars(select(DrawPrize).where(DrawPrize.draw_id == draw.id))
        pass_codes = s.scalars(select(DrawPassCode).where(DrawPassCode.draw_id == draw.id))
        entries = s.scalars(select(DrawEntry).where(DrawEntry.draw_id == draw.id))
        return {
            "draw": (
                draw.name,
                draw.status,
                draw.entry_count,
                draw.opened_at,
                draw.closed_at,
                draw.revealed_seed,
            ),
            "remaining": {p.code: p.remaining for p in prizes},
            "pass_codes": sorted((c.code_hash, c.entry_id, c.used_at) for c in pass_codes),
            "entries": sorted(
                (e.entry_no, e.member_id, e.prize_code, e.collected_at, e.collected_store_id) for e in entries
            ),
        }


def draw_body(w: World, **fields: Any) -> dict[str, Any]:
    return {
        "code": f"D-{w.fresh_card()}",
        "name": "双十一抽奖",
        "free_per_day": 1,
        "points_cost": 30,
        "pass_codes": True,
        "per_member_limit": 3,
        "prizes": [{"code": "none", "name": "谢谢参与", "kind": "none", "weight": 1}],
    } | fields


def open_draw(w: World, **fields: Any) -> str:
    """A new open draw of brand 1 (``draw_body`` with ``fields``); its code."""
    body = draw_body(w, **fields)
    created = answer(w.client.post(DRAWS, json=body, headers=w.auth("hq_operator")), 201)
    assert (created["status"], created["seed"], created["entry_count"]) == ("draft", None, 0)
    assert (
        answer(w.client.post(f"{DRAWS}/{body['code']}/open", headers=w.auth("hq_admin")))["status"] == "open"
    )
    return str(body["code"])


def test_a_bad_draw_is_refused_naming_its_field(world: World) -> None:
    w = world
    before = w.counts()
    weightless = draw_body(w, prizes=[{"code": "none", "name": "谢谢", "kind": "none", "weight": 0}])
    no_template = draw_body(
        w,
        prizes=[
            {"code": "c", "name": "券", "kind": "coupon", "weight": 1, "stock": 1},
            {"code": "none", "name": "谢谢", "kind": "none", "weight": 1},
        ],
    )
    unknown = draw_body(
        w,
        prizes=[
            {"code": "c", "name": "券", "kind": "coupon", "weight": 1, "stock": 1, "coupon_template": "nope"},
            *draw_body(w)["prizes"],
        ],
    )
    for body, field in (
        (weightless, "prizes.0.weight"),
        (no_template, "prizes.0.coupon_template"),
        (unknown, "prizes.0.coupon_template"),
        (draw_body(w, free_per_day=-1), "free_per_day"),
    ):
        assert refused(w.client.post(DRAWS, json=body, headers=w.auth("hq_admin"))) == (422, "invalid", field)
    assert w.counts() == before
    code = open_draw(w)
    before, state = w.counts(), draw_state(w, code)
    again = w.client.post(DRAWS, json=draw_body(w, code=code, name="另一个"), headers=w.auth("hq_admin"))
    assert refused(again) == (409, "conflict", "code")
    assert refused(w.client.post(f"{DRAWS}/{code}/open", headers=w.auth("hq_admin"))) == (
        409,
        "conflict",
        "status",
    )
    assert (w.counts(), draw_state(w, code)) == (before, state)


def test_entries_by_every_way_in_within_the_limits(world: World) -> None:
    w = world
    code = open_draw(w)
    member = w.fresh_member(w.b1, store="D1")
    w.earn(w.b1, member, f"DR-{member}", 10000, store="D1")  # 100 points
    codes = answer(
        w.client.post(
            f"{DRAWS}/{code}/pass-codes", json={"count": 2, "batch": "p1"}, headers=w.auth("hq_admin")
        ),
        201,
    )["codes"]
    path = f"{DRAWS}/{code}/entries"
    first = answer(write(w, "store_key", path, {"member_id": member, "source": "free"}, key="e-1"))
    assert (first["entry_no"], first["source"], first["prize"]["code"], first["points_spent"]) == (
        1,
        "free",
        "none",
        0,
    )
    before, state = w.counts(), draw_state(w, code)
    assert answer(write(w, "store_key", path, {"member_id": member, "source": "free"}, key="e-1")) == first
    assert w.counts() == before, "the same key and body took a second entry"
    assert draw_state(w, code) == state
    other_body = write(w, "store_key", path, {"member_id": member, "source": "points"}, key="e-1")
    assert refused(other_body) == (409, "conflict", "Idempotency-Key")
    again = write(w, "store_key", path, {"member_id": member, "source": "free"})
    assert refused(again) == (409, "conflict", "source")
    assert refused(write(w, "store_key", path, {"member_id": member, "source": "free"}, send_key=False)) == (
        422,
        "invalid",
        "Idempotency-Key",
    )
    assert (w.counts(), draw_state(w, code)) == (before, state)
    by_points = answer(write(w, "store_key", path, {"member_id": member, "source": "points"}))
    assert (by_points["entry_no"], by_points["points_spent"]) == (2, 30)
    assert [(t.code, t.amount) for t in w.moves(member)][-1:] == [("redeem", 30)]
    by_code = answer(
        write(w, "pos_key", path, {"member_id": member, "source": "pass_code", "pass_code": codes[0].lower()})
    )
    assert (by_code["entry_no"], by_code["source"]) == (3, "pass_code")
    other = w.fresh_member(w.b1, store="D1")
    before, state = w.counts(), draw_state(w, code)
    assert state["draw"][2] == 3 and [used for _, used, _ in state["pass_codes"]].count(None) == 1
    fourth = write(w, "pos_key", path, {"member_id": member, "source": "pass_code", "pass_code": codes[1]})
    assert refused(fourth) == (409, "conflict", "member_id")  # 3 entries a member
    reused = write(w, "pos_key", path, {"member_id": other, "source": "pass_code", "pass_code": codes[0]})
    assert refused(reused) == (409, "conflict", "pass_code")
    poor = write(w, "pos_key", path, {"member_id": other, "source": "points"})
    assert refused(poor) == (409, "exceeds_balance", "points")
    assert (w.counts(), draw_state(w, code)) == (before, state)
    mine = answer(w.client.get(f"{DRAWS}/{code}/members/{member}", headers=w.auth("store_key")))
    assert [(e["entry_no"], e["source"]) for e in mine["entries"]] == [
        (1, "free"),
        (2, "points"),
        (3, "pass_code"),
    ]


def test_goods_are_collected_once_at_the_callers_own_store(world: World) -> None:
    w = world
    code = open_draw(
        w,
        prizes=[
            {"code": "bag", "name": "帆布袋", "kind": "goods", "weight": 1, "stock": 5},
            {"code": "none", "name": "谢谢", "kind": "none", "weight": 1},
        ],
        free_per_day=20,
        per_member_limit=None,
    )
    member = w.fresh_member(w.b1, store="D1")
    won = None
    while won is None:
        entry = answer(
            write(w, "store_key", f"{DRAWS}/{code}/entries", {"member_id": member, "source": "free"})
        )
        won = entry["pickup_code"]
    assert entry["pickup_display"].replace("-", "") == won
    collect = f"{DRAWS}/pickups/{won}/collect"
    before, state = w.counts(), draw_state(w, code)
    assert state["remaining"]["bag"] == 4 and [e[3] for e in state["entries"]] == [None] * len(
        state["entries"]
    )
    assert refused(write(w, "store_key", collect, {"store_code": "A1"})) == (404, "not_found", "store_code")
    assert refused(write(w, "pos_key", collect, {})) == (422, "invalid", "store_code")
    assert refused(write(w, "store_manager", collect, {})) == (
        404,
        "not_found",
        "pickup_code",
    )  # not A1's member
    assert (w.counts(), draw_state(w, code)) == (before, state)
    done = answer(write(w, "store_key", collect, {}))
    assert (done["store_code"], done["collected_store_id"], done["pickup_code"]) == (
        "D1",
        w.b1.stores["D1"],
        won,
    )
    assert done["collected_at"] is not None
    before, state = w.counts(), draw_state(w, code)
    assert [e[3:] for e in state["entries"] if e[3] is not None] == [
        (instant(done["collected_at"]), w.b1.stores["D1"])
    ]
    assert refused(write(w, "pos_key", collect, {"store_code": "D1"})) == (409, "conflict", "pickup_code")
    assert (w.counts(), draw_state(w, code)) == (before, state)
    stats = answer(w.client.get(f"{DRAWS}/{code}/stats", headers=w.auth("guide")))
    bag = next(p for p in stats["prizes"] if p["code"] == "bag")
    assert (bag["stock"], bag["remaining"], bag["won"], bag["collected"]) == (5, 4, 1, 1)


def test_the_audit_before_and_after_the_draw_closes(world: World) -> None:
    w = world
    prizes = [
        {"code": "gold", "name": "金条", "kind": "goods", "weight": 1, "stock": 2},
        {"code": "pts", "name": "10积分", "kind": "points", "weight": 3, "stock": 10, "points": 10},
        {"code": "none", "name": "谢谢", "kind": "none", "weight": 6},
    ]
    code = open_draw(w, prizes=prizes, free_per_day=30, per_member_limit=None)
    members = [w.fresh_member(w.b1, store="D1") for _ in range(2)]
    for n in range(20):
        answer(
            write(w, "pos_key", f"{DRAWS}/{code}/entries", {"member_id": members[n % 2], "source": "free"})
        )
    published = answer(w.client.get(f"{DRAWS}/{code}/audit", headers=w.auth("guide")))
    assert (published["status"], published["seed"], len(published["log"])) == ("open", None, 20)
    assert [p["code"] for p in published["prizes"]] == ["gold", "pts", "none"]
    closed = answer(w.client.post(f"{DRAWS}/{code}/close", headers=w.auth("hq_admin")))
    assert hashlib.sha256(bytes.fromhex(closed["seed"])).hexdigest() == published["commitment"]
    final = answer(w.client.get(f"{DRAWS}/{code}/audit", headers=w.auth("pos_key")))
    assert final == published | {"status": "closed", "seed": closed["seed"]}
    assert draws.replay_published(final) == []
    prize_table = [draws.Prize(p["code"], p["weight"], p["stock"]) for p in final["prizes"]]
    assert [c for _, c in final["log"]] == draws.run(
        bytes.fromhex(final["seed"]), final["draw_id"], prize_table, 20
    )
    before, state = w.counts(), draw_state(w, code)
    late = write(w, "pos_key", f"{DRAWS}/{code}/entries", {"member_id": members[0], "source": "free"})
    assert refused(late) == (409, "conflict", "draw")
    assert (w.counts(), draw_state(w, code)) == (before, state)
