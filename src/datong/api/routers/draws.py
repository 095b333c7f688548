"""Lucky draws (抽奖) for HQ, the mini-program and the stores: set a draw up (create, open, close, print
pass codes), enter it on behalf of a member, a member's entries, goods collected at a store, the audit
and the figures.

Entering and collecting carry an Idempotency-Key (``api/idempotency.py``): the same key and body answer
the first entry again and take no second one. Generating pass codes carries none on purpose: its answer
holds the codes in clear, which would then be stored with the key; a lost answer leaves a batch no one
knows, so generate another. A member the caller may not see answers as one that does not exist, and so
does a pickup code of such a member. A caller bound to a store (a store's API key, a store manager)
hands goods over at its own store; an agent manager at one of its agent's stores.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header

from datong.api.deps import PrincipalDep, RuntimeDep, SessionDep
from datong.api.idempotency import answer_once
from datong.core.errors import NotFound, ValidationFailed
from datong.coupons import draw_codes, draw_queries, lucky_draws
from datong.coupons.draw_schemas import CollectIn, DrawIn, EnterIn, PassCodesIn, draw_view, entry_view
from datong.members.queries import get_member_for, require
from datong.org.queries import store_to_act_at
from datong.tenancy import rules

router = APIRouter(prefix="/api/v1/draws", tags=["draws"])
IdempotencyKey = Annotated[str | None, Header()]


@router.post("", status_code=201)
def create_draw(body: DrawIn, s: SessionDep, p: PrincipalDep, rt: RuntimeDep) -> dict[str, Any]:
    """A new draw (a draft) with its prizes, in the order of their weight bands. Its seed is drawn now
    and only its commitment shown. A second draw with the same code is refused (409)."""
    require(p, rules.COUPONS_ADMIN)
    draw = lucky_draws.create_draw(
        s, tenant_id=p.tenant_id, keyring=rt.keyring, actor=p.label, data=body.model_dump()
    )
    return draw_view(draw, draw_queries.draw_prizes(s, draw))


@router.post("/{code}/open")
def open_draw(code: str, s: SessionDep, p: PrincipalDep) -> dict[str, Any]:
    """Draft → open: entries are taken (between ``opens_at`` and ``closes_at``, when given)."""
    require(p, rules.COUPONS_ADMIN)
    draw = lucky_draws.open_draw(s, tenant_id=p.tenant_id, code=code, actor=p.label)
    return draw_view(draw, draw_queries.draw_prizes(s, draw))


@router.post("/{code}/close")
def close_draw(code: str, s: SessionDep, p: PrincipalDep, rt: RuntimeDep) -> dict[str, Any]:
    """Open → closed: no more entries, and the seed is revealed (``seed``) for the audit."""
    require(p, rules.COUPONS_ADMIN)
    draw = lucky_draws.close_draw(s, tenant_id=p.tenant_id, keyring=rt.keyring, code=code, actor=p.label)
    return draw_view(draw, draw_queries.draw_prizes(s, draw))


@router.post("/{code}/pass-codes", status_code=201)
def generate_pass_codes(
    code: str, body: PassCodesIn, s: SessionDep, p: PrincipalDep, rt: RuntimeDep
) -> dict[str, Any]:
    """New pass codes for printing, shown this once: only their keyed hashes are kept."""
    require(p, rules.COUPONS_ADMIN)
    codes = draw_codes.generate_pass_codes(
        s,
        tenant_id=p.tenant_id,
        keyring=rt.keyring,
        code=code,
        count=body.count,
        batch=body.batch,
        actor=p.label,
    )
    return {"draw": code, "batch": body.batch, "count": len(codes), "codes": codes}


@router.post("/{code}/entries")
def enter(
    code: str,
    body: EnterIn,
    s: SessionDep,
    p: PrincipalDep,
    rt: RuntimeDep,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """One entry for the member, by a pass code, by points or free, and what it won: a coupon (its
    code), points, goods (a pickup code to show at a store) or nothing. A refusal (a limit, a used
    code, too few points, a prize that cannot be given) changes nothing."""
    require(p, rules.COUPONS_WRITE)

    def act() -> tuple[int, dict[str, Any]]:
        member = get_member_for(s, p, body.member_id)
        done = lucky_draws.enter_draw(
            s,
            tenant_id=p.tenant_id,
            keyring=rt.keyring,
            code=code,
            member_id=member.id,
            source=body.source,
            pass_code=body.pass_code,
            actor=p.label,
        )
        view = entry_view(done.entry, done.prize, done.coupon.code if done.coupon else None)
        return 200, {**view, "draw": code, "points_spent": done.points_spent}

    return answer_once(s, p, idempotency_key, {"draw": code, **body.model_dump(mode="json")}, act)


@router.get("/{code}/members/{member_id}")
def member_entries(code: str, member_id: str, s: SessionDep, p: PrincipalDep) -> dict[str, Any]:
    """The member's entries in the draw, in order, with their prizes and pickup codes."""
    require(p, rules.COUPONS_READ)
    member = get_member_for(s, p, member_id)
    rows = draw_queries.member_entries(s, tenant_id=p.tenant_id, code=code, member_id=member.id)
    return {
        "draw": code,
        "member_id": member.id,
        "entries": [entry_view(entry, prize, coupon_code) for entry, prize, coupon_code in rows],
    }


@router.post("/pickups/{pickup_code}/collect")
def collect(
    pickup_code: str,
    body: CollectIn,
    s: SessionDep,
    p: PrincipalDep,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """The member collects goods won in a draw at a store, once: the store and the time are recorded."""
    require(p, rules.COUPONS_WRITE)

    def act() -> tuple[int, dict[str, Any]]:
        store = store_to_act_at(s, p, body.store_code)
        if store is None:
            raise ValidationFailed("goods are collected at a store: name it", field="store_code")
        found = draw_codes.find_pickup(s, tenant_id=p.tenant_id, pickup_code=pickup_code)
        try:
            get_member_for(s, p, found.member_id)
        except NotFound:
            raise NotFound("no such pickup code", field="pickup_code") from None
        entry = draw_codes.collect_prize(
            s, tenant_id=p.tenant_id, entry_id=found.id, store_id=store.id, actor=p.label
        )
        prize, coupon_code = draw_queries.entry_prize(s, entry)
        return 200, {**entry_view(entry, prize, coupon_code), "store_code": store.code}

    body_seen = {"pickup_code": pickup_code, **body.model_dump(mode="json")}
    return answer_once(s, p, idempotency_key, body_seen, act)


@router.get("/{code}/audit")
def audit(code: str, s: SessionDep, p: PrincipalDep) -> dict[str, Any]:
    """What an auditor needs: the commitment, the prize table (positions, codes, weights, stocks), the
    log of every entry's number and prize, and, once the draw is closed, the seed. Replay it with
    ``datong.coupons.draws.replay_published`` (or ``datong draws verify --json FILE``)."""
    require(p, rules.COUPONS_READ)
    return draw_queries.audit_draw(s, tenant_id=p.tenant_id, code=code).as_dict()


@router.get("/{code}/stats")
def stats(code: str, s: SessionDep, p: PrincipalDep) -> dict[str, Any]:
    """Entries (all, by way in, members) and, per prize, its stock, what is left, won and collected."""
    require(p, rules.COUPONS_READ)
    return draw_queries.draw_stats(s, tenant_id=p.tenant_id, code=code)
