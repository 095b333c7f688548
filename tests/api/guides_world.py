"""The guides' part of the API tests' world (``conftest._build_brand`` calls ``build_guides``), written
through the services as the WeChat callback, the jobs and HQ would have written it.

Every brand pays its guides 5% of what a member paid (``GUIDE_PLAN``), and its codes' pictures open
``landing_url(brand)``. G1 and G2 (store A1) each have a card. In ``GUIDES_PERIOD`` (October 2025, China
time):

- G1's shopper, a new member of A1, followed the brand through G1's card on the 3rd (a fan, bound to
  G1), bought 200 yuan in the e-shop on the 5th (credited to G1), which completed and earned G1 10 yuan
  on the 7th;
- G2's shopper was sent a link by G2 on the 4th, bought 300 yuan on the 6th (credited to G2), which
  earned G2 15 yuan on the 8th; 100 yuan of it was refunded on the 10th: 5 yuan taken back;
- on the 20th each guide disputed the month (open).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from datong.channels.records import OrderFields
from datong.core.clock import CHINA_TZ
from datong.guides import commissions, disputes
from datong.guides import service as guides
from datong.guides.models import QrCode
from datong.orders.service import record_order, record_refund
from datong.tenancy.models import Tenant

if TYPE_CHECKING:
    from tests.api.conftest import Brand, World

GUIDES_PERIOD = "2025-10"
GUIDE_PLAN: dict[str, Any] = {"rules": [{"code": "base", "rate_bp": 500}]}
GUIDE_PAID = {"G1": 20000, "G2": 30000}  # fen paid on each guide's credited order
GUIDE_EARNED = {"G1": 1000, "G2": 1500}  # 5%
GUIDE_REFUND_FEN = 10000  # refunded of G2's order
GUIDE_CLAWED_BACK = 500  # a third of G2's commission
GUIDE_CLAIM = "十月少算了一单"
ACTOR = "system:test"


def landing_url(brand: Brand) -> str:
    return f"https://m.{brand.code}.example.com/guide?from=qr"


def october(day: int, hour: int = 12) -> datetime:
    return datetime(2025, 10, day, hour, tzinfo=CHINA_TZ)


def build_guides(world: World, brand: Brand) -> None:
    with world.db.unit_of_work() as s:
        tenant = s.get(Tenant, brand.tenant_id)
        assert tenant is not None
        tenant.settings = {
            **(tenant.settings or {}),
            "guides": {"landing_url": landing_url(brand)},
            "commission": GUIDE_PLAN,
        }
        for code in ("G1", "G2"):
            card = guides.create_qr_code(
                s,
                tenant_id=brand.tenant_id,
                actor=ACTOR,
                kind="guide",
                name=f"{code}的名片",
                guide_id=brand.guides[code],
            )
            brand.guide_cards[code] = card.id
    for n, code in enumerate(("G1", "G2")):
        member_id = brand.guide_shoppers[code] = world.fresh_member(brand, store="A1")
        with world.db.unit_of_work() as s:
            if code == "G1":
                card = s.get(QrCode, brand.guide_cards[code])
                assert card is not None
                scan = guides.record_scan(
                    s,
                    tenant_id=brand.tenant_id,
                    member_id=member_id,
                    scene=card.scene,
                    at=october(3),
                    kind="subscribe",
                )
                assert scan.binding is not None
            else:
                guides.record_touch(
                    s,
                    tenant_id=brand.tenant_id,
                    member_id=member_id,
                    kind="link",
                    at=october(4),
                    guide_id=brand.guides[code],
                )
            placed = october(5 + n)
            order = record_order(
                s,
                tenant_id=brand.tenant_id,
                channel="eshop",
                fields=OrderFields(
                    order_no=f"GE-{brand.code}-{code}",
                    status="completed",
                    status_raw="completed",
                    total_fen=GUIDE_PAID[code],
                    paid_fen=GUIDE_PAID[code],
                    created_at=placed,
                    paid_at=placed,
                    completed_at=placed,
                ),
                member_id=member_id,
                store_id=None,
            )
            brand.guide_orders[code] = order.order_no
            credit = guides.attribute_order(s, tenant_id=brand.tenant_id, order_id=order.id)
            assert credit is not None and credit.guide_id == brand.guides[code]
            posted = commissions.post_commission(
                s, tenant_id=brand.tenant_id, order_id=order.id, actor=ACTOR, at=october(7 + n)
            )
            assert posted is not None and posted.transfer is not None
            assert posted.transfer.amount == GUIDE_EARNED[code]
            if code == "G2":
                record_refund(
                    s,
                    tenant_id=brand.tenant_id,
                    order=order,
                    refund_no="GR-1",
                    amount_fen=GUIDE_REFUND_FEN,
                    at=october(10),
                )
                taken = commissions.claw_back_commission(
                    s, tenant_id=brand.tenant_id, order_id=order.id, actor=ACTOR, at=october(10)
                )
                assert taken == GUIDE_CLAWED_BACK
            dispute = disputes.raise_dispute(
                s,
                tenant_id=brand.tenant_id,
                guide_id=brand.guides[code],
                period=GUIDES_PERIOD,
                claim=GUIDE_CLAIM,
                actor=ACTOR,
                at=october(20),
            )
            brand.guide_disputes[code] = dispute.id
