"""The guides API over HTTP, on both backends: codes made and listed within each caller's reach, their
pictures (decoded back to the QR modules), exclusive guides, assignment and hand-over, touches and an
order's credit, statements as JSON, CSV and Excel (read back), KPIs, adjustments and disputes, each
refusal naming its field and changing nothing.

Beside the world's guides (G1 and G2 at A1, ``tests/api/guides_world.py``) this module's brand 1 has
G3 at B1 (agent B) and G4 at A2 (agent A), and G3 a credited order in GUIDES_PERIOD (``extra``).
"""

from __future__ import annotations

import csv
import io
import struct
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import openpyxl
import pytest
import segno
from defusedxml import ElementTree
from sqlalchemy import select

from datong.channels.records import OrderFields
from datong.core.clock import CHINA_TZ, utcnow
from datong.guides import commissions, jobs
from datong.guides import service as guides
from datong.guides.models import BindingChange, CommissionDispute, QrCode, Touch
from datong.ledger.models import Transfer
from datong.orders.service import record_order
from datong.org.models import Guide
from datong.org.service import load_org
from datong.tenancy.models import Tenant
from tests.api.calls import answer, refused, write
from tests.api.conftest import Brand, World, instant
from tests.api.guides_world import GUIDE_CLAWED_BACK, GUIDE_EARNED, GUIDES_PERIOD, landing_url, october

CODES = "/api/v1/guides/qr-codes"
TOUCHES = "/api/v1/guides/touches"
ATTRIBUTION = "/api/v1/guides/attribution"
STATEMENT = "/api/v1/guides/commission/statement"
ADJUST = "/api/v1/guides/commission/adjustments"
DISPUTES = "/api/v1/guides/commission/disputes"
KPIS = "/api/v1/guides/kpis"
G3_PAID = 40000  # G3's credited order in GUIDES_PERIOD: 20 yuan of commission
G1_ADJUSTED = 250  # an adjustment of G1's in GUIDES_PERIOD, with a reason a spreadsheet would run
FORMULA = '=HYPERLINK("http://x.example","点我")'


@pytest.fixture(scope="module")
def extra(world: World) -> World:
    """G3 at B1 and G4 at A2; G3's shopper (a new member of B1) was sent a link by G3 on 2 October
    2025, bought 400 yuan online on the 9th, and G3 earned 20 yuan on the 12th; G1 was adjusted."""
    b1 = world.b1
    with world.db.unit_of_work() as s:
        data = {
            "stores": [
                {"code": "B1", "guides": [{"code": "G3", "name": "小黄"}]},
                {"code": "A2", "guides": [{"code": "G4", "name": "小郑"}]},
            ]
        }
        load_org(s, tenant_id=b1.tenant_id, actor="system:test", data=data)
        for code in ("G3", "G4"):
            b1.guides[code] = (
                s.scalar(select(Guide.id).where(Guide.tenant_id == b1.tenant_id, Guide.code == code)) or ""
            )
    shopper = b1.guide_shoppers["G3"] = world.fresh_member(b1, store="B1")
    with world.db.unit_of_work() as s:
        guides.record_touch(
            s, tenant_id=b1.tenant_id, member_id=shopper, kind="link", at=october(2), guide_id=b1.guides["G3"]
        )
        order = _order(s, b1, shopper, f"GE-{b1.code}-G3", G3_PAID, october(9))
        b1.guide_orders["G3"] = order.order_no
        assert guides.attribute_order(s, tenant_id=b1.tenant_id, order_id=order.id) is not None
        commissions.post_commission(
            s, tenant_id=b1.tenant_id, order_id=order.id, actor="system:test", at=october(12)
        )
        commissions.adjust_commission(
            s,
            tenant_id=b1.tenant_id,
            guide_id=b1.guides["G1"],
            amount_fen=G1_ADJUSTED,
            reason=FORMULA,
            actor="system:test",
            at=october(15),
        )
    return world


def _order(s: Any, brand: Brand, member_id: str, order_no: str, paid_fen: int, at: datetime) -> Any:
    fields = OrderFields(
        order_no, "completed", "completed", paid_fen, paid_fen, created_at=at, paid_at=at, completed_at=at
    )
    return record_order(
        s, tenant_id=brand.tenant_id, channel="eshop", fields=fields, member_id=member_id, store_id=None
    )


def unchanged(
    w: World, call: Callable[..., httpx.Response], *args: Any, **kwargs: Any
) -> tuple[int, str | None, str | None]:
    """A refused call (``call(w, *args, **kwargs)``): what it says (status, code, field), after checking
    it changed nothing."""
    before = w.counts()
    response = call(w, *args, **kwargs)
    assert response.status_code >= 400, response.text
    assert w.counts() == before, "a refused request changed something"
    return refused(response)


def get(w: World, caller: str, path: str, **params: Any) -> httpx.Response:
    response: httpx.Response = w.client.get(path, params=params, headers=w.auth(caller))
    return response


# --- codes --------------------------------------------------------------------------------------------


def test_codes_are_made_within_the_callers_reach(extra: World) -> None:
    w, b1 = extra, extra.b1
    own = answer(write(w, "guide", CODES, {"kind": "guide", "name": "我的名片"}), 201)  # no code: itself
    assert (own["guide_code"], own["store_code"]) == ("G1", "A1")
    refusals = [
        ("guide", {"kind": "guide", "name": "x", "guide_code": "G2"}, (404, "not_found", "guide_code")),
        ("guide", {"kind": "store", "name": "x", "store_code": "A1"}, (403, "forbidden", "kind")),
        ("guide", {"kind": "campaign", "name": "x", "campaign_code": "xm"}, (403, "forbidden", "kind")),
        (
            "store_manager",
            {"kind": "guide", "name": "x", "guide_code": "G3"},
            (404, "not_found", "guide_code"),
        ),
        (
            "store_manager",
            {"kind": "store", "name": "x", "store_code": "A2"},
            (404, "not_found", "store_code"),
        ),
        ("store_manager", {"kind": "event", "name": "x", "campaign_code": "xm"}, (403, "forbidden", "kind")),
        (
            "agent_manager",
            {"kind": "guide", "name": "x", "guide_code": "G3"},
            (404, "not_found", "guide_code"),
        ),
        (
            "agent_manager",
            {"kind": "store", "name": "x", "store_code": "B1"},
            (404, "not_found", "store_code"),
        ),
        ("hq_operator", {"kind": "store", "name": "x"}, (422, "invalid", "store_code")),
        (
            "hq_operator",
            {"kind": "guide", "name": "x", "guide_code": "G1", "store_code": "B1"},
            (422, "invalid", "store_code"),
        ),
        (
            "hq_operator",
            {"kind": "store", "name": "x", "store_code": "A1", "guide_code": "G1"},
            (422, "invalid", "guide_code"),
        ),
        ("hq_operator", {"kind": "event", "name": "x"}, (422, "invalid", "campaign_code")),
        # A campaign's or event's scans are touches of its store: without one each would be refused.
        (
            "hq_operator",
            {"kind": "campaign", "name": "x", "campaign_code": "xm"},
            (422, "invalid", "store_code"),
        ),
        ("hq_admin", {"kind": "event", "name": "x", "campaign_code": "xm"}, (422, "invalid", "store_code")),
        (
            "hq_operator",
            {"kind": "event", "name": "x", "campaign_code": "xm", "store_code": "B1", "scene": "厦门"},
            (422, "invalid", "scene"),
        ),
        (
            "hq_operator",
            {"kind": "guide", "name": "x", "guide_code": "G1", "window_days": 400},
            (422, "invalid", "window_days"),
        ),
        ("pos_key", {"kind": "guide", "name": "x", "guide_code": "G1"}, (403, "forbidden", None)),
    ]
    for caller, body, expected in refusals:
        assert unchanged(w, write, caller, CODES, body) == expected, (caller, body)

    a1 = answer(
        write(w, "store_manager", CODES, {"kind": "store", "name": "湖滨店门口", "store_code": "A1"}), 201
    )
    assert (a1["kind"], a1["store_id"], a1["guide_id"], a1["scene"][:2]) == (
        "store",
        b1.stores["A1"],
        None,
        "s_",
    )
    a2 = answer(
        write(w, "agent_manager", CODES, {"kind": "store", "name": "天一店", "store_code": "A2"}), 201
    )
    g4 = answer(
        write(w, "agent_manager", CODES, {"kind": "guide", "name": "小郑名片", "guide_code": "G4"}), 201
    )
    g3 = answer(write(w, "hq_admin", CODES, {"kind": "guide", "name": "小黄名片", "guide_code": "G3"}), 201)
    fair = {
        "kind": "campaign",
        "name": "厦门展会",
        "store_code": "B1",
        "campaign_code": "xm-fair",
        "window_days": 30,
        "scene": "xm-2026",
    }
    campaign = answer(write(w, "hq_operator", CODES, fair), 201)
    assert (campaign["scene"], campaign["window_days"], campaign["store_code"]) == ("xm-2026", 30, "B1")
    assert unchanged(w, write, "hq_admin", CODES, {**fair, "name": "again"}) == (409, "conflict", "scene")

    listed = {
        caller: {c["id"] for c in answer(get(w, caller, CODES))}
        for caller in ("guide", "store_manager", "agent_manager", "hq_admin")
    }
    world_cards = set(b1.guide_cards.values())
    assert listed["guide"] == {own["id"], b1.guide_cards["G1"]}
    assert listed["store_manager"] == world_cards | {own["id"], a1["id"]}
    assert listed["agent_manager"] == world_cards | {own["id"], a1["id"], a2["id"], g4["id"]}
    assert listed["hq_admin"] == listed["agent_manager"] | {g3["id"], campaign["id"]}
    assert [c["id"] for c in answer(get(w, "hq_admin", CODES, kind="campaign"))] == [campaign["id"]]
    # One of another store's codes answers as one that does not exist.
    assert unchanged(w, get, "store_manager", f"{CODES}/{g3['id']}") == (404, "not_found", "qr_code_id")
    assert answer(get(w, "agent_manager", f"{CODES}/{g4['id']}")) == g4


def _png_modules(png: bytes, scale: int = 8) -> tuple[int, list[list[int]]]:
    """The PNG's size in pixels and its dark (1) and light (0) modules inside the quiet zone, read with
    the PNG specification only (greyscale, one bit a pixel, any row filter)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    width = height = 0
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos : pos + 8])
        chunk = png[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", chunk[:10])
            assert (depth, colour) == (1, 0)
        elif kind == b"IDAT":
            idat += chunk
    raw, stride = zlib.decompress(idat), (width + 7) // 8
    rows: list[bytearray] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind_of_filter, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a, b, c = (line[i - 1] if i else 0), previous[i], (previous[i - 1] if i else 0)
            guess = {0: 0, 1: a, 2: b, 3: (a + b) // 2}.get(kind_of_filter)
            if guess is None:  # Paeth
                p = a + b - c
                guess = (
                    a if abs(p - a) <= min(abs(p - b), abs(p - c)) else (b if abs(p - b) <= abs(p - c) else c)
                )
            line[i] = (line[i] + guess) & 0xFF
        rows.append(line)
        previous = line

    def dark(row: int, column: int) -> int:  # black is 0 in a greyscale PNG
        y, x = row * scale + scale // 2, column * scale + scale // 2
        return 1 - ((rows[y][x // 8] >> (7 - x % 8)) & 1)

    n = width // scale
    return width, [[dark(r, c) for c in range(4, n - 4)] for r in range(4, n - 4)]


def _modules_of(text: str) -> list[list[int]]:
    return [list(row) for row in segno.make_qr(text, error="m").matrix]


def test_pictures_encode_the_ticket_or_the_brands_landing_page(extra: World) -> None:
    w, b1 = extra, extra.b1
    card = b1.guide_cards["G2"]
    with w.db.reading() as s:
        row = s.get(QrCode, card)
        assert row is not None
        scene = row.scene
    payload = f"https://m.{b1.code}.example.com/guide?from=qr&scene={scene}"
    png = get(w, "store_manager", f"{CODES}/{card}.png")
    assert (png.status_code, png.headers["content-type"]) == (200, "image/png")
    width, modules = _png_modules(png.content)
    assert modules == _modules_of(payload)
    assert width == (len(modules) + 8) * 8  # 8 pixels a module, 4 modules of quiet zone each side
    small = get(w, "store_manager", f"{CODES}/{card}.png", scale=2)
    assert struct.unpack(">I", small.content[16:20])[0] == (len(modules) + 8) * 2
    svg = get(w, "store_manager", f"{CODES}/{card}.svg")
    root = ElementTree.fromstring(svg.content)
    assert (root.tag, root.get("width")) == ("{http://www.w3.org/2000/svg}svg", str((len(modules) + 8) * 8))
    assert unchanged(w, get, "store_manager", f"{CODES}/{card}.png", scale=0)[:2] == (422, "invalid")
    # A WeChat ticket, once there is one, is what the picture opens.
    ticket = "https://weixin.qq.com/q/02abcDEF"
    with w.db.unit_of_work() as s:
        row = s.get(QrCode, card)
        assert row is not None
        row.wechat_url = ticket
    try:
        assert _png_modules(get(w, "hq_admin", f"{CODES}/{card}.png").content)[1] == _modules_of(ticket)
        assert answer(get(w, "hq_admin", f"{CODES}/{card}"))["payload"] == ticket
        # No ticket and no landing page: nothing to draw.
        with w.db.unit_of_work() as s:
            tenant = s.get(Tenant, b1.tenant_id)
            assert tenant is not None
            tenant.settings = {**tenant.settings, "guides": {}}
        g1 = b1.guide_cards["G1"]
        assert unchanged(w, get, "guide", f"{CODES}/{g1}.svg") == (409, "conflict", "landing_url")
        assert answer(get(w, "guide", f"{CODES}/{g1}"))["payload"] is None
    finally:
        with w.db.unit_of_work() as s:
            tenant = s.get(Tenant, b1.tenant_id)
            assert tenant is not None
            tenant.settings = {**tenant.settings, "guides": {"landing_url": landing_url(b1)}}
            row = s.get(QrCode, card)
            assert row is not None
            row.wechat_url = None


# --- members ------------------------------------------------------------------------------------------


def test_assignment_history_and_hand_over_to_a_stores_pool(extra: World) -> None:
    w, b1 = extra, extra.b1
    load = {"stores": [{"code": "A1", "guides": [{"code": "G5", "name": "小孙"}]}]}
    with w.db.unit_of_work() as s:
        load_org(s, tenant_id=b1.tenant_id, actor="system:test", data=load)
        b1.guides["G5"] = (
            s.scalar(select(Guide.id).where(Guide.tenant_id == b1.tenant_id, Guide.code == "G5")) or ""
        )
    members = [w.fresh_member(b1, store="A1") for _ in range(2)]
    for member_id in members:
        answer(write(w, "hq_operator", f"/api/v1/guides/members/{member_id}/guide", {"guide_code": "G5"}))
    again = f"/api/v1/guides/members/{members[0]}/guide"
    assert unchanged(w, write, "hq_admin", again, {"guide_code": "G5"}) == (409, "conflict", "guide_code")
    view = answer(get(w, "store_manager", f"/api/v1/guides/members/{members[0]}"))
    [change] = view.pop("history")
    assigned_at = instant(change["at"])
    assert instant(view.pop("protected_until")) == assigned_at + timedelta(days=90)
    assert view == {
        "member_id": members[0],
        "guide_id": b1.guides["G5"],
        "guide_code": "G5",
        "guide_name": "小孙",
        "guide_active": True,
        "home_store_id": b1.stores["A1"],
    }
    assert (change["reason"], change["from_guide_id"], change["to_guide_code"]) == ("assign", None, "G5")
    # The guide G1 does not see G5's members; the agent manager does (store A1).
    assert unchanged(w, get, "guide", f"/api/v1/guides/members/{members[0]}")[0] == 404
    answer(get(w, "agent_manager", f"/api/v1/guides/members/{members[0]}"))

    hand_over = "/api/v1/guides/hand-over"
    for body, expected in (
        ({"guide_code": "G5"}, (422, "invalid", "to_guide_code")),
        (
            {"guide_code": "G5", "to_guide_code": "G1", "to_store_code": "A1"},
            (422, "invalid", "to_guide_code"),
        ),
        ({"guide_code": "G5", "to_guide_code": "G5"}, (409, "conflict", "to_guide_code")),
        ({"guide_code": "G5", "to_store_code": "ZZ"}, (404, "not_found", "to_store_code")),
    ):
        assert unchanged(w, write, "hq_admin", hand_over, body) == expected, body
    assert (
        unchanged(w, write, "store_manager", hand_over, {"guide_code": "G5", "to_store_code": "A1"})[0] == 403
    )
    done = answer(write(w, "hq_admin", hand_over, {"guide_code": "G5", "to_store_code": "A1"}))
    assert instant(done.pop("left_at")) > assigned_at
    assert done == {
        "guide_id": b1.guides["G5"],
        "guide_code": "G5",
        "members_moved": 2,
        "to_guide_code": None,
        "to_store_code": "A1",
    }
    for member_id in members:
        view = answer(get(w, "hq_admin", f"/api/v1/guides/members/{member_id}"))
        assert (view["guide_id"], view["home_store_id"]) == (None, b1.stores["A1"])
        assert [
            (h["reason"], h["from_guide_code"], h["to_guide_code"], h["to_store_id"]) for h in view["history"]
        ] == [
            ("assign", None, "G5", b1.stores["A1"]),
            ("handover", "G5", None, b1.stores["A1"]),
        ]
    # A guide who has left takes no one, and records no touch.
    fresh = w.fresh_member(b1, store="A1")
    assert unchanged(w, write, "hq_admin", f"/api/v1/guides/members/{fresh}/guide", {"guide_code": "G5"})[
        :2
    ] == (409, "conflict")
    touch = {"member_id": fresh, "kind": "link", "guide_code": "G5"}
    assert unchanged(w, write, "hq_admin", TOUCHES, touch) == (409, "conflict", "guide_code")


# --- touches and credits ------------------------------------------------------------------------------


def _attribute(w: World, brand: Brand) -> None:
    with w.db.unit_of_work() as s:
        after: str | None = ""
        while after is not None:
            after, *_ = jobs.attribute_orders(
                s, tenant_id=brand.tenant_id, since=jobs.recent_since(), after_id=after
            )


def test_a_guides_touch_credits_the_next_online_order_and_who_sees_the_credit(extra: World) -> None:
    w, b1 = extra, extra.b1
    mine = w.fresh_member(b1, store="A1", guide="G1")
    touch = answer(
        write(w, "guide", TOUCHES, {"member_id": mine, "kind": "link", "ref": "https://m.x/p/9"}), 201
    )
    assert (touch["guide_code"], touch["store_id"], touch["kind"], touch["ref"]) == (
        "G1",
        b1.stores["A1"],
        "link",
        "https://m.x/p/9",
    )
    far = w.fresh_member(b1, store="B1")
    assert unchanged(w, write, "guide", TOUCHES, {"member_id": far, "kind": "link"})[0] == 404
    assert unchanged(w, write, "guide", TOUCHES, {"member_id": mine, "kind": "link", "guide_code": "G2"}) == (
        404,
        "not_found",
        "guide_code",
    )
    assert unchanged(w, write, "store_manager", TOUCHES, {"member_id": mine, "kind": "visit"}) == (
        422,
        "invalid",
        "guide_code",
    )
    assert unchanged(
        w, write, "store_manager", TOUCHES, {"member_id": mine, "kind": "scan", "guide_code": "G1"}
    )[:2] == (422, "invalid")
    answer(write(w, "hq_admin", TOUCHES, {"member_id": far, "kind": "coupon", "guide_code": "G3"}), 201)
    lonely = w.fresh_member(b1, store="A1")
    placed = utcnow() + timedelta(seconds=1)  # after the touches
    numbers: dict[str, str] = {}
    with w.db.unit_of_work() as s:
        for member_id, no in ((mine, "T-MINE"), (far, "T-FAR"), (lonely, "T-LONELY")):
            numbers[member_id] = _order(s, b1, member_id, f"{no}-{w.fresh_card()}", 12300, placed).order_no
    _attribute(w, b1)

    def credit(_: World, caller: str, member_id: str) -> httpx.Response:
        return get(w, caller, ATTRIBUTION, channel="eshop", order_no=numbers[member_id])

    seen = answer(credit(w, "guide", mine))
    assert instant(seen.pop("at")) == placed
    assert (instant(seen["touch"].pop("at")), seen.pop("touch")) == (
        instant(touch["at"]),
        {"id": touch["id"], "kind": "link"},
    )
    assert seen == {
        "order_id": seen["order_id"],
        "channel": "eshop",
        "order_no": numbers[mine],
        "credited": True,
        "guide_id": b1.guides["G1"],
        "guide_code": "G1",
        "store_id": b1.stores["A1"],
        "store_code": "A1",
        "rule": "last_guide_touch",
        "window_days": 15,
        "amount_fen": 12300,
    }
    for caller in ("store_manager", "agent_manager", "hq_operator"):
        assert answer(credit(w, caller, mine))["guide_code"] == "G1"
    assert answer(credit(w, "hq_operator", far))["guide_code"] == "G3"
    for caller in ("guide", "store_manager", "agent_manager"):
        assert unchanged(w, credit, caller, far) == (404, "not_found", "order_no")
        assert unchanged(w, credit, caller, lonely) == (404, "not_found", "order_no")
    assert answer(credit(w, "hq_admin", lonely))["credited"] is False
    assert set(answer(credit(w, "hq_admin", lonely))) == {"order_id", "channel", "order_no", "credited"}


# --- statements and KPIs ------------------------------------------------------------------------------


def _rows(body: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (
            r["guide_code"],
            r["store_code"],
            r["orders"],
            r["earned_fen"],
            r["clawed_back_fen"],
            r["adjusted_fen"],
            r["net_fen"],
        )
        for r in body["rows"]
    ]


G1_ROW = ("G1", "A1", 1, GUIDE_EARNED["G1"], 0, G1_ADJUSTED, GUIDE_EARNED["G1"] + G1_ADJUSTED)
G2_ROW = ("G2", "A1", 1, GUIDE_EARNED["G2"], GUIDE_CLAWED_BACK, 0, GUIDE_EARNED["G2"] - GUIDE_CLAWED_BACK)
G3_ROW = ("G3", "B1", 1, G3_PAID // 20, 0, 0, G3_PAID // 20)


def test_statements_are_scoped_and_read_back_from_csv_and_excel(extra: World) -> None:
    w, b1 = extra, extra.b1
    by_caller = {
        caller: answer(get(w, caller, STATEMENT, period=GUIDES_PERIOD))
        for caller in ("hq_admin", "agent_manager", "store_manager", "guide")
    }
    assert _rows(by_caller["hq_admin"]) == [G1_ROW, G2_ROW, G3_ROW]
    assert _rows(by_caller["agent_manager"]) == _rows(by_caller["store_manager"]) == [G1_ROW, G2_ROW]
    assert _rows(by_caller["guide"]) == [G1_ROW]
    assert by_caller["guide"]["total"] == {
        "orders": 1,
        "earned_fen": 1000,
        "clawed_back_fen": 0,
        "adjusted_fen": G1_ADJUSTED,
        "paid_out_fen": 0,
        "net_fen": 1000 + G1_ADJUSTED,
    }
    assert [(line["code"], line["amount_fen"], line["reason"]) for line in by_caller["guide"]["lines"]] == [
        ("commission", 1000, None),
        ("commission_adjust", G1_ADJUSTED, FORMULA),
    ]
    assert get(w, "hq_admin", STATEMENT, period="2025-13").status_code == 422
    assert get(w, "pos_key", STATEMENT, period=GUIDES_PERIOD).status_code == 403

    summary = get(w, "store_manager", STATEMENT, period=GUIDES_PERIOD, format="csv")
    assert summary.headers["content-type"] == "text/csv; charset=utf-8"
    assert (
        summary.headers["content-disposition"]
        == f'attachment; filename="commission-{GUIDES_PERIOD}-summary.csv"'
    )
    assert summary.content.startswith("\ufeff".encode())
    assert list(csv.reader(io.StringIO(summary.content.decode("utf-8-sig")))) == [
        [
            "导购编号",
            "导购",
            "门店",
            "订单数",
            "佣金(元)",
            "退款扣回(元)",
            "调整(元)",
            "已分账支付(元)",
            "应付(元)",
        ],
        ["G1", "小周", "A1", "1", "10.00", "0.00", "2.50", "0.00", "12.50"],
        ["G2", "小吴", "A1", "1", "15.00", "5.00", "0.00", "0.00", "10.00"],
        ["合计", "", "", "2", "25.00", "5.00", "2.50", "0.00", "22.50"],
    ]
    with w.db.reading() as s:
        moves = {
            (t.guide_id, t.code): t
            for t in s.scalars(
                select(Transfer).where(Transfer.tenant_id == b1.tenant_id, Transfer.code.like("commission%"))
            )
            if t.created_at < datetime(2025, 11, 1, tzinfo=CHINA_TZ)
        }

    def when(guide: str, code: str) -> str:
        return moves[(b1.guides[guide], code)].created_at.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S")

    def trf(guide: str, code: str) -> str:
        return moves[(b1.guides[guide], code)].id

    lines = get(w, "store_manager", STATEMENT, period=GUIDES_PERIOD, format="csv", part="lines")
    assert list(csv.reader(io.StringIO(lines.content.decode("utf-8-sig")))) == [
        ["导购编号", "导购", "时间", "类型", "金额(元)", "渠道", "订单号", "原因", "流水号"],
        [
            "G1",
            "小周",
            "2025-10-07 12:00:00",
            "佣金",
            "10.00",
            "eshop",
            b1.guide_orders["G1"],
            "",
            trf("G1", "commission"),
        ],
        [
            "G2",
            "小吴",
            "2025-10-08 12:00:00",
            "佣金",
            "15.00",
            "eshop",
            b1.guide_orders["G2"],
            "",
            trf("G2", "commission"),
        ],
        [
            "G2",
            "小吴",
            "2025-10-10 12:00:00",
            "退款扣回",
            "-5.00",
            "eshop",
            b1.guide_orders["G2"],
            "",
            trf("G2", "commission_clawback"),
        ],
        [
            "G1",
            "小周",
            when("G1", "commission_adjust"),
            "调整",
            "2.50",
            "",
            "",
            "'" + FORMULA,
            trf("G1", "commission_adjust"),
        ],
    ]
    book = openpyxl.load_workbook(
        io.BytesIO(get(w, "hq_admin", STATEMENT, period=GUIDES_PERIOD, format="xlsx").content)
    )
    assert book.sheetnames == ["汇总", "明细"]
    assert [list(r) for r in book["汇总"].iter_rows(values_only=True)] == [
        [
            "导购编号",
            "导购",
            "门店",
            "订单数",
            "佣金(元)",
            "退款扣回(元)",
            "调整(元)",
            "已分账支付(元)",
            "应付(元)",
        ],
        ["G1", "小周", "A1", 1, 10, 0, 2.5, 0, 12.5],
        ["G2", "小吴", "A1", 1, 15, 5, 0, 0, 10],
        ["G3", "小黄", "B1", 1, 20, 0, 0, 0, 20],
        ["合计", None, None, 3, 45, 5, 2.5, 0, 42.5],
    ]
    detail = book["明细"]
    assert [list(r)[0:5] for r in detail.iter_rows(min_row=2, values_only=True)] == [
        ["G1", "小周", "2025-10-07 12:00:00", "佣金", 10],
        ["G2", "小吴", "2025-10-08 12:00:00", "佣金", 15],
        ["G2", "小吴", "2025-10-10 12:00:00", "退款扣回", -5],
        ["G3", "小黄", "2025-10-12 12:00:00", "佣金", 20],
        ["G1", "小周", when("G1", "commission_adjust"), "调整", 2.5],
    ]
    # The reason is text in the workbook, never a formula.
    reason = detail.cell(row=6, column=8)
    assert (reason.value, reason.data_type) == (FORMULA, "s")
    assert detail.cell(row=2, column=5).number_format == "0.00"


def test_kpis_by_guide_store_and_agent_are_scoped(extra: World) -> None:
    w = extra

    def keys(caller: str, by: str) -> dict[str, tuple[int, int, int, int, int]]:
        body = answer(get(w, caller, KPIS, period=GUIDES_PERIOD, by=by))
        return {
            r["code"]: (
                r["fans_added"],
                r["members_bound"],
                r["attributed_orders"],
                r["attributed_gmv_fen"],
                r["commission_fen"],
            )
            for r in body["rows"]
        }

    a1 = (1, 1, 2, 50000, 2000 + G1_ADJUSTED)
    b1_store = (0, 0, 1, G3_PAID, G3_PAID // 20)
    assert keys("hq_admin", "store") == {"A1": a1, "B1": b1_store}
    assert keys("agent_manager", "store") == keys("store_manager", "store") == {"A1": a1}
    assert keys("guide", "store") == {}
    assert keys("hq_admin", "agent") == {"AGA": a1, "AGB": b1_store}
    assert keys("agent_manager", "agent") == {"AGA": a1}
    assert keys("store_manager", "agent") == {}
    assert keys("guide", "guide") == {"G1": (1, 1, 1, 20000, 1000 + G1_ADJUSTED)}
    assert set(keys("store_manager", "guide")) == {"G1", "G2"}
    assert set(keys("hq_operator", "guide")) == {"G1", "G2", "G3"}
    assert get(w, "hq_admin", KPIS, period=GUIDES_PERIOD, by="region").status_code == 422


# --- adjustments and disputes -------------------------------------------------------------------------


def test_adjustments_answer_once_and_need_a_reason(extra: World) -> None:
    w, b1 = extra, extra.b1
    body = {
        "guide_code": "G2",
        "amount_fen": -120,
        "reason": "重复计佣",
        "order": {"channel": "eshop", "order_no": b1.guide_orders["G2"]},
    }
    first = answer(write(w, "hq_operator", ADJUST, body, key="adj-1"), 201)
    assert answer(write(w, "hq_operator", ADJUST, body, key="adj-1"), 201) == first
    assert first["order_id"] == w.order(b1, "eshop", b1.guide_orders["G2"]).id
    with w.db.reading() as s:
        transfer = s.get(Transfer, first["transfer_id"])
        assert transfer is not None
        assert (transfer.amount, transfer.code, transfer.reason, transfer.order_id) == (
            120,
            "commission_adjust",
            "重复计佣",
            first["order_id"],
        )
    assert unchanged(w, write, "hq_operator", ADJUST, {**body, "amount_fen": -130}, key="adj-1") == (
        409,
        "conflict",
        "Idempotency-Key",
    )
    assert unchanged(w, write, "hq_operator", ADJUST, body, send_key=False) == (
        422,
        "invalid",
        "Idempotency-Key",
    )
    for change, field in (
        ({"reason": "   "}, "reason"),
        ({"reason": ""}, "reason"),
        ({"amount_fen": 0}, "amount_fen"),
        ({"order": {"channel": "eshop", "order_no": "NOPE"}}, "order_no"),
        ({"guide_code": "G9"}, "guide_code"),
    ):
        status, _, got = unchanged(w, write, "hq_admin", ADJUST, {**body, **change})
        assert (status in (404, 422), got) == (True, field), change
    assert unchanged(w, write, "store_manager", ADJUST, body)[0] == 403


def test_disputes_are_raised_within_reach_and_settled_once(extra: World) -> None:
    w, b1 = extra, extra.b1
    claim = {"guide_code": "G1", "period": GUIDES_PERIOD, "claim": "T-LONELY 那单是我介绍的"}
    mine = answer(write(w, "guide", DISPUTES, claim), 201)
    assert (mine["guide_code"], mine["status"], mine["raised_by"]) == (
        "G1",
        "open",
        f"user:{b1.users['guide']}",
    )
    next_month = (utcnow().astimezone(CHINA_TZ).replace(day=28) + timedelta(days=5)).strftime("%Y-%m")
    for caller, change, expected in (
        ("guide", {"guide_code": "G2"}, (404, "not_found", "guide_code")),
        ("store_manager", {"guide_code": "G3"}, (404, "not_found", "guide_code")),
        ("guide", {"period": next_month}, (422, "invalid", "period")),
        ("guide", {"period": "2025-13"}, (422, "invalid", "period")),
        ("guide", {"claim": "   "}, (422, "invalid", "claim")),
        ("guide", {"order": {"channel": "eshop", "order_no": "NOPE"}}, (404, "not_found", "order_no")),
    ):
        assert unchanged(w, write, caller, DISPUTES, {**claim, **change}) == expected, change
    theirs = answer(write(w, "store_manager", DISPUTES, {**claim, "guide_code": "G2"}), 201)
    listed = {d["id"] for d in answer(get(w, "guide", DISPUTES, status="open"))}
    assert mine["id"] in listed and theirs["id"] not in listed and b1.guide_disputes["G1"] in listed
    assert {d["guide_code"] for d in answer(get(w, "store_manager", DISPUTES))} == {"G1", "G2"}
    assert [d["id"] for d in answer(get(w, "hq_admin", DISPUTES, period="2099-01"))] == []

    resolve = f"{DISPUTES}/{mine['id']}/resolve"
    assert unchanged(w, write, "store_manager", resolve, {"outcome": "reject", "reason": "x"})[0] == 403
    for body, field in (
        ({"outcome": "reject", "reason": "无误", "amount_fen": 100}, "amount_fen"),
        ({"outcome": "adjust", "reason": "补发"}, "amount_fen"),
        ({"outcome": "adjust", "reason": " ", "amount_fen": 100}, "reason"),
        ({"outcome": "ignore", "reason": "x"}, "outcome"),
    ):
        assert unchanged(w, write, "hq_admin", resolve, body) == (422, "invalid", field), body
    settled = answer(
        write(
            w,
            "hq_admin",
            resolve,
            {"outcome": "adjust", "amount_fen": 300, "reason": "核实补发"},
            key="res-1",
        )
    )
    assert (
        answer(
            write(
                w,
                "hq_admin",
                resolve,
                {"outcome": "adjust", "amount_fen": 300, "reason": "核实补发"},
                key="res-1",
            )
        )
        == settled
    )
    assert (settled["status"], settled["resolution"], settled["resolved_by"]) == (
        "adjusted",
        "核实补发",
        f"user:{b1.users['hq_admin']}",
    )
    with w.db.reading() as s:
        transfer = s.get(Transfer, settled["transfer_id"])
        assert transfer is not None and (transfer.amount, transfer.guide_id, transfer.reason) == (
            300,
            b1.guides["G1"],
            "核实补发",
        )
        dispute = s.get(CommissionDispute, mine["id"])
        assert dispute is not None and dispute.transfer_id == transfer.id
    this_month = instant(settled["resolved_at"]).astimezone(CHINA_TZ).strftime("%Y-%m")
    lines = answer(get(w, "guide", STATEMENT, period=this_month))["lines"]
    assert [
        (line["code"], line["amount_fen"], line["transfer_id"])
        for line in lines
        if line["reason"] == "核实补发"
    ] == [("commission_adjust", 300, transfer.id)]
    assert unchanged(w, write, "hq_admin", resolve, {"outcome": "reject", "reason": "重复"}) == (
        409,
        "conflict",
        "dispute_id",
    )
    rejected = answer(
        write(
            w,
            "hq_operator",
            f"{DISPUTES}/{theirs['id']}/resolve",
            {"outcome": "reject", "reason": "该单不在窗口内"},
        )
    )
    assert (rejected["status"], rejected["transfer_id"]) == ("rejected", None)
    assert w.audit_actions(b1.tenant_id, theirs["id"]) == ["guides.dispute_raise", "guides.dispute_resolve"]
    assert unchanged(w, write, "other_brand_admin", resolve, {"outcome": "reject", "reason": "x"}) == (
        404,
        "not_found",
        "dispute_id",
    )


def test_a_scan_binding_is_in_the_members_history(extra: World) -> None:
    """The world's G1 shopper followed through G1's card: bound, protected for 90 days from the scan."""
    w, b1 = extra, extra.b1
    view = answer(get(w, "guide", f"/api/v1/guides/members/{b1.guide_shoppers['G1']}"))
    assert (view["guide_code"], instant(view["protected_until"])) == ("G1", october(3) + timedelta(days=90))
    [change] = view["history"]
    assert (change["reason"], change["to_guide_code"], instant(change["at"]), change["actor"]) == (
        "scan",
        "G1",
        october(3).astimezone(UTC),
        "wechat",
    )
    with w.db.reading() as s:
        assert (
            s.scalar(select(BindingChange.id).where(BindingChange.member_id == b1.guide_shoppers["G1"]))
            == change["id"]
        )


# --- retries ------------------------------------------------------------------------------------------


def test_writes_answer_once_for_an_idempotency_key(extra: World) -> None:
    """A retried write (the same Idempotency-Key and body) gets the first answer and changes nothing
    more: one touch, one dispute, one assignment, one code. The key with another body is a 409, a write
    without a key a 422; both change nothing."""
    w, b1 = extra, extra.b1
    key_refused = (409, "conflict", "Idempotency-Key")
    no_key = (422, "invalid", "Idempotency-Key")

    mine = w.fresh_member(b1, store="A1", guide="G1")
    touch = {"member_id": mine, "kind": "coupon", "ref": "NEW10"}
    sent = answer(write(w, "guide", TOUCHES, touch, key="tch-1"), 201)
    before = w.counts()
    assert answer(write(w, "guide", TOUCHES, touch, key="tch-1"), 201) == sent
    assert w.counts() == before
    with w.db.reading() as s:
        assert s.scalars(select(Touch.id).where(Touch.member_id == mine)).all() == [sent["id"]]
    assert unchanged(w, write, "guide", TOUCHES, {**touch, "ref": "NEW20"}, key="tch-1") == key_refused
    assert unchanged(w, write, "guide", TOUCHES, touch, send_key=False) == no_key

    claim = {"guide_code": "G1", "period": GUIDES_PERIOD, "claim": "重试的申诉"}
    raised = answer(write(w, "guide", DISPUTES, claim, key="dsp-1"), 201)
    before = w.counts()
    assert answer(write(w, "guide", DISPUTES, claim, key="dsp-1"), 201) == raised
    assert w.counts() == before
    with w.db.reading() as s:
        found = s.scalars(select(CommissionDispute.id).where(CommissionDispute.claim == "重试的申诉")).all()
        assert found == [raised["id"]]
    assert unchanged(w, write, "guide", DISPUTES, {**claim, "claim": "另一件"}, key="dsp-1") == key_refused
    assert unchanged(w, write, "guide", DISPUTES, claim, send_key=False) == no_key

    # Assigned again with the key: the first answer, not "already the member's exclusive guide".
    fresh = w.fresh_member(b1, store="A1")
    path = f"/api/v1/guides/members/{fresh}/guide"
    assigned = answer(write(w, "hq_admin", path, {"guide_code": "G2"}, key="asg-1"))
    before = w.counts()
    assert answer(write(w, "hq_admin", path, {"guide_code": "G2"}, key="asg-1")) == assigned
    assert w.counts() == before
    with w.db.reading() as s:
        assert s.scalars(select(BindingChange.id).where(BindingChange.member_id == fresh)).all() == [
            assigned["id"]
        ]
    # The member is part of what the key answers for: another member with the key is another request.
    other = f"/api/v1/guides/members/{w.fresh_member(b1, store='A1')}/guide"
    assert unchanged(w, write, "hq_admin", other, {"guide_code": "G2"}, key="asg-1") == key_refused

    code = {"kind": "store", "name": "重试的门店码", "store_code": "A1"}
    made = answer(write(w, "store_manager", CODES, code, key="qr-1"), 201)
    before = w.counts()
    assert answer(write(w, "store_manager", CODES, code, key="qr-1"), 201) == made
    assert w.counts() == before
    with w.db.reading() as s:
        assert s.scalars(select(QrCode.id).where(QrCode.name == "重试的门店码")).all() == [made["id"]]
    assert unchanged(w, write, "store_manager", CODES, {**code, "name": "另一个"}, key="qr-1") == key_refused
