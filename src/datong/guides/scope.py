"""Which guides, stores, codes and credits a caller may see: the one place the guides API asks.

- HQ (and a brand-wide API key, and the command line) sees the whole brand.
- An agent manager sees its agent's stores and every guide in them; a store manager (or a key bound to
  a store) its store and that store's guides. Both see the codes and credits of those stores.
- A guide sees itself only: its own cards, its own credits, its own commission.

Something the caller may not see answers exactly as something that does not exist (``NotFound``), so a
caller learns nothing about the rest of the brand. Creating a code is also a question of the kind of
code (``check_code_maker``): only HQ makes campaign and event codes, a guide only its own card.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from datong.core.errors import Forbidden, NotFound
from datong.guides.models import QrCode
from datong.org.models import Guide, Store
from datong.tenancy.rules import Principal


@dataclass(frozen=True)
class GuideScope:
    tenant_id: str
    everything: bool
    guide_ids: frozenset[str] = frozenset()  # the guides seen, when not everything
    store_ids: frozenset[str] = frozenset()  # the stores whose codes and credits are seen
    agent_ids: frozenset[str] = frozenset()  # an agent manager's agent, for KPIs by agent
    own_guide_id: str | None = None  # the caller is this guide

    @property
    def guide_filter(self) -> frozenset[str] | None:
        """The guides to keep in a statement or a list; None: every guide of the brand."""
        return None if self.everything else self.guide_ids

    def sees_guide(self, guide_id: str | None) -> bool:
        return guide_id is not None and (self.everything or guide_id in self.guide_ids)

    def sees_store(self, store_id: str | None) -> bool:
        return store_id is not None and (self.everything or store_id in self.store_ids)

    def sees_credit(self, guide_id: str | None, store_id: str | None) -> bool:
        """A code, an order's credit: seen through its guide or, for a store's people, its store."""
        return self.everything or self.sees_guide(guide_id) or self.sees_store(store_id)

    def sees_kpi(self, by: str, key: str) -> bool:
        if self.everything:
            return True
        if by == "guide":
            return key in self.guide_ids
        if by == "store":
            return key in self.store_ids
        return key in self.agent_ids


def scope_of(session: Session, principal: Principal) -> GuideScope:
    tenant_id = principal.tenant_id
    if principal.sees_all_members:
        return GuideScope(tenant_id, everything=True)
    if principal.role == "guide" or principal.guide_id:
        own = principal.guide_id
        return GuideScope(tenant_id, False, guide_ids=frozenset({own} if own else ()), own_guide_id=own)
    stores = principal.store_ids or frozenset()
    guides = frozenset(
        session.scalars(
            select(Guide.id).where(Guide.tenant_id == tenant_id, Guide.store_id.in_(sorted(stores)))
        )
    )
    agents = frozenset({principal.agent_id}) if principal.agent_id else frozenset()
    return GuideScope(tenant_id, False, guide_ids=guides, store_ids=stores, agent_ids=agents)


def visible_guide(session: Session, scope: GuideScope, code: str, *, field: str = "guide_code") -> Guide:
    """The brand's guide with this code, if the caller sees it."""
    guide = session.scalar(select(Guide).where(Guide.tenant_id == scope.tenant_id, Guide.code == code))
    if guide is None or not scope.sees_guide(guide.id):
        raise NotFound(f"no guide {code!r}", field=field)
    return guide


def visible_store(session: Session, scope: GuideScope, code: str, *, field: str = "store_code") -> Store:
    store = session.scalar(select(Store).where(Store.tenant_id == scope.tenant_id, Store.code == code))
    if store is None or not scope.sees_store(store.id):
        raise NotFound(f"no store {code!r}", field=field)
    return store


def visible_qr_code(session: Session, scope: GuideScope, qr_code_id: str) -> QrCode:
    code = session.get(QrCode, qr_code_id)
    if (
        code is None
        or code.tenant_id != scope.tenant_id
        or not scope.sees_credit(code.guide_id, code.store_id)
    ):
        raise NotFound(f"no code {qr_code_id}", field="qr_code_id")
    return code


def visible_qr_codes(session: Session, scope: GuideScope, *, kind: str | None = None) -> Sequence[QrCode]:
    """The codes the caller sees, oldest first."""
    query = select(QrCode).where(QrCode.tenant_id == scope.tenant_id)
    if kind is not None:
        query = query.where(QrCode.kind == kind)
    if not scope.everything:
        query = query.where(
            or_(QrCode.guide_id.in_(sorted(scope.guide_ids)), QrCode.store_id.in_(sorted(scope.store_ids)))
        )
    return session.scalars(query.order_by(QrCode.created_at, QrCode.id)).all()


def check_code_maker(scope: GuideScope, kind: str) -> None:
    """Whether the caller may make this kind of code at all (whose code it is: ``visible_guide`` and
    ``visible_store``). HQ makes campaign and event codes; a guide makes only its own card."""
    if kind in ("campaign", "event") and not scope.everything:
        raise Forbidden("campaign and event codes are made by HQ", field="kind")
    if kind == "store" and scope.own_guide_id is not None:
        raise Forbidden("a guide makes only its own card (kind guide)", field="kind")
