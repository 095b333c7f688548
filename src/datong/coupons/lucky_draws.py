"""Lucky draws (抽奖): setting a draw up (its prizes, opening, closing) and entering it. The fairness
scheme itself is pure, in ``draws.py``; pass codes and collecting goods at a store are in ``draw_codes.py``;
reads and the audit in ``draw_queries.py``.

An entry is taken under the draw's row lock (``SELECT … FOR UPDATE`` on PostgreSQL; on SQLite every
writer already holds the database's write lock from ``BEGIN IMMEDIATE``): its number is the draw's
``entry_count`` + 1, its outcome follows from the seed and the prizes still in stock, and the stock, the
entry, what it cost (points, a pass code) and the prize (a coupon, points, a pickup code) are written in
the caller's one transaction, so they all happen or none does. Whatever refuses an entry (a limit, a
used code, too few points, a coupon that cannot be issued) raises before the caller commits, and so
changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from datong.core.clock import CHINA_TZ, utcnow
from datong.core.crypto import Keyring
from datong.core.db import rowcount
from datong.core.errors import Conflict, NotFound, ValidationFailed
from datong.core.ids import new_id
from datong.coupons import draws
from datong.coupons.codes import new_code
from datong.coupons.draw_codes import mark_pass_code_used, unused_pass_code
from datong.coupons.draw_queries import CLOSED, DRAFT, OPEN, draw_prizes, draw_seed, get_draw
from datong.coupons.draw_schemas import DrawIn
from datong.coupons.limits import unallocated
from datong.coupons.models import Coupon, Draw, DrawEntry, DrawPassCode, DrawPrize
from datong.coupons.service import get_template, issue_coupon
from datong.loyalty.programs import get_program
from datong.loyalty.redemptions import redeem_points
from datong.loyalty.service import adjust_points
from datong.members.service import get_active_member
from datong.tenancy.service import audit

# --- setting a draw up ---------------------------------------------------------------------------


def create_draw(session: Session, *, tenant_id: str, keyring: Keyring, actor: str, data: Any) -> Draw:
    """A new draw (a draft) from a draw file's content (see ``draw_schemas.DrawIn``). Its seed is drawn
    now and kept encrypted; only its commitment is shown until the draw closes. Audited."""
    try:
        spec = DrawIn.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "draw"
        raise ValidationFailed(f"{where}: {first['msg']}", field=where) from None
    if session.scalar(select(Draw.id).where(Draw.tenant_id == tenant_id, Draw.code == spec.code)):
        raise Conflict(f"a draw {spec.code!r} exists", field="code")
    if spec.opens_at and spec.closes_at and spec.closes_at <= spec.opens_at:
        raise ValidationFailed("closes_at is after opens_at", field="closes_at")
    if not (spec.pass_codes or spec.points_cost or spec.free_per_day):
        raise ValidationFailed(
            "a draw needs a way in: pass_codes, points_cost or free_per_day", field="free_per_day"
        )
    if spec.points_cost is not None:
        _need_program(session, tenant_id, "points_cost")
    seen: set[str] = set()
    for index, prize in enumerate(spec.prizes):
        where = f"prizes.{index}"
        if prize.code in seen:
            raise ValidationFailed(f"prize code {prize.code!r} appears twice", field=f"{where}.code")
        seen.add(prize.code)
        if prize.kind != "coupon" and prize.coupon_template is not None:
            raise ValidationFailed("only a coupon prize names a template", field=f"{where}.coupon_template")
        if prize.kind != "points" and prize.points is not None:
            raise ValidationFailed("only a points prize gives points", field=f"{where}.points")
        if prize.kind == "coupon" and prize.coupon_template is None:
            raise ValidationFailed("a coupon prize names its template", field=f"{where}.coupon_template")
        if prize.kind == "points":
            if prize.points is None:
                raise ValidationFailed("a points prize says how many points", field=f"{where}.points")
            _need_program(session, tenant_id, f"{where}.points")
    coupons = [(f"prizes.{i}", p.coupon_template, p.stock) for i, p in enumerate(spec.prizes)]
    _check_coupon_prizes(session, tenant_id, coupons, spec.closes_at)
    try:
        draws.check_prizes([draws.Prize(p.code, p.weight, p.stock) for p in spec.prizes])
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="prizes") from None
    draw_id = new_id("drw")
    seed = draws.new_seed()
    draw = Draw(
        id=draw_id,
        tenant_id=tenant_id,
        **spec.model_dump(exclude={"prizes"}),
        status=DRAFT,
        seed_enc=keyring.encrypt(
            seed.hex(), tenant_id=tenant_id, table="draw", row_id=draw_id, column="seed_enc"
        ),
        commitment=draws.commitment(seed),
        entry_count=0,
    )
    session.add(draw)
    session.flush()  # the prizes refer to it
    for position, prize in enumerate(spec.prizes):
        session.add(
            DrawPrize(
                tenant_id=tenant_id,
                draw_id=draw_id,
                position=position,
                remaining=prize.stock,
                **prize.model_dump(),
            ),
        )
    session.flush()
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="draw.create",
        object_type="draw",
        object_id=draw_id,
        detail={"code": spec.code, "commitment": draw.commitment},
    )
    return draw


def _need_program(session: Session, tenant_id: str, where: str) -> None:
    try:
        get_program(session, tenant_id=tenant_id)
    except (NotFound, ValidationFailed) as exc:
        raise ValidationFailed(
            f"points need the brand's one points program: {exc.message}", field=where
        ) from None


def _check_coupon_prizes(
    session: Session,
    tenant_id: str,
    prizes: list[tuple[str, str | None, int | None]],
    closes_at: datetime | None,
) -> None:
    """Every coupon prize (where, template, stock) can be given until the draw closes: a coupon that
    cannot be issued would refuse every entry that wins it (see ``enter_draw``), for good. Its template
    exists and is on; it still issues at ``closes_at`` (a draw with no end needs a template with none);
    and its budget holds the whole stock of every prize that names it, out of what the stores'
    allocations leave free, since a prize is issued through no store."""
    by_template: dict[str, list[tuple[str, int | None]]] = {}
    for where, code, stock in prizes:
        if code is not None:
            by_template.setdefault(code, []).append((where, stock))
    for code, uses in by_template.items():
        first = uses[0][0]
        try:
            template = get_template(session, tenant_id=tenant_id, code=code)
        except NotFound as exc:
            raise ValidationFailed(exc.message, field=f"{first}.coupon_template") from None
        if not template.active:
            raise ValidationFailed(
                f"coupon template {code!r} is switched off", field=f"{first}.coupon_template"
            )
        ends_at = None if template.valid_days is not None else template.valid_until
        if ends_at is not None and (closes_at is None or ends_at < closes_at):
            raise ValidationFailed(
                f"coupon template {code!r} issues until {ends_at.isoformat()}: the draw must close by then",
                field=f"{first}.coupon_template",
            )
        if template.total_quantity is None:
            continue
        held = int(session.scalar(select(unallocated(template))) or 0)
        left = max(template.total_quantity - template.issued_count - held, 0)
        spoken_for = 0
        for index, (where, stock) in enumerate(uses):
            spoken_for += stock if stock is not None else left + 1
            if spoken_for <= left:
                continue
            message = f"the template's budget has {left} coupons left"
            message += f" ({held} more are allocated to stores)" if held else ""
            if index == 0:
                message += ": the prize's stock must be at most that"
            else:
                message += f": the prizes of {code!r} share it, and together their stocks are more"
            raise ValidationFailed(message, field=f"{where}.stock")


def open_draw(session: Session, *, tenant_id: str, code: str, actor: str, at: datetime | None = None) -> Draw:
    """Draft → open. The commitment was fixed when the draw was made; coupon prizes are checked again
    (their stock still in hand), since their templates may have changed since."""
    draw = get_draw(session, tenant_id=tenant_id, code=code, lock=True)
    if draw.status != DRAFT:
        raise Conflict(f"draw {code!r} is {draw.status}: only a draft opens", field="status")
    coupons = [(f"prizes.{p.position}", p.coupon_template, p.remaining) for p in draw_prizes(session, draw)]
    _check_coupon_prizes(session, tenant_id, coupons, draw.closes_at)
    draw.status, draw.opened_at = OPEN, at or utcnow()
    session.flush()
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="draw.open",
        object_type="draw",
        object_id=draw.id,
        detail={"commitment": draw.commitment},
    )
    return draw


def close_draw(
    session: Session, *, tenant_id: str, keyring: Keyring, code: str, actor: str, at: datetime | None = None
) -> Draw:
    """Open → closed: no more entries, and the seed is revealed so that anyone can replay the log."""
    draw = get_draw(session, tenant_id=tenant_id, code=code, lock=True)
    if draw.status != OPEN:
        raise Conflict(f"draw {code!r} is {draw.status}: only an open draw closes", field="status")
    draw.status, draw.closed_at, draw.revealed_seed = CLOSED, at or utcnow(), draw_seed(keyring, draw).hex()
    session.flush()
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="draw.close",
        object_type="draw",
        object_id=draw.id,
        detail={"entries": draw.entry_count, "seed": draw.revealed_seed},
    )
    return draw


# --- entering ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entered:
    entry: DrawEntry
    prize: DrawPrize
    coupon: Coupon | None  # the coupon a coupon prize gave
    points_spent: int = 0


def enter_draw(
    session: Session,
    *,
    tenant_id: str,
    keyring: Keyring,
    code: str,
    member_id: str,
    source: str,
    pass_code: str | None = None,
    actor: str,
    at: datetime | None = None,
) -> Entered:
    """One entry for a member: by a pass code (once per code), by points (``points_cost``, spent through
    the points service) or free (``free_per_day``), within the member's limits, while the draw is open.
    The prize is given in the same transaction: a coupon (issue key ``draw:<draw id>:<entry no>``),
    points (a points adjustment with the draw in its reason), or goods (a pickup code for a store)."""
    at = at or utcnow()
    if source not in ("pass_code", "points", "free"):
        raise ValidationFailed("source is pass_code, points or free", field="source")
    if (source == "pass_code") != (pass_code is not None):
        raise ValidationFailed("a pass code comes with source pass_code, and only then", field="pass_code")
    draw = get_draw(session, tenant_id=tenant_id, code=code, lock=True)
    get_active_member(session, tenant_id=tenant_id, member_id=member_id)
    _check_open(draw, at)
    day = at.astimezone(CHINA_TZ).date()
    _check_limits(session, draw, member_id, day)
    used = _check_source(session, keyring, draw, member_id, day, source, pass_code)
    spent = 0
    detail: dict[str, Any] = {}
    if source == "points":
        assert draw.points_cost is not None
        paid = redeem_points(
            session,
            program=get_program(session, tenant_id=tenant_id),
            member_id=member_id,
            points=draw.points_cost,
            channel="lucky_draw",
            store_id=None,
            actor=actor,
            at=at,
        )
        spent, detail["points_operation"] = paid.points, paid.id
    entry_no = draw.entry_count + 1
    prizes = draw_prizes(session, draw)
    specs = [draws.Prize(p.code, p.weight, p.stock) for p in prizes]
    remaining = {p.code: p.remaining or 0 for p in prizes if p.stock is not None}
    won_code = draws.outcome(draw_seed(keyring, draw), draw.id, entry_no, specs, remaining)
    won = next(p for p in prizes if p.code == won_code)
    if won.stock is not None:
        taken = session.execute(
            update(DrawPrize)
            .where(DrawPrize.id == won.id, DrawPrize.remaining > 0)
            .values(remaining=DrawPrize.remaining - 1)
        )
        if rowcount(taken) != 1:  # the outcome only draws on prizes in stock: never, under the lock
            raise Conflict(f"prize {won.code!r} is out of stock: try again", field="draw")
    coupon = None
    if won.kind == "coupon" and won.coupon_template:
        try:
            coupon, _created = issue_coupon(
                session,
                tenant_id=tenant_id,
                template_code=won.coupon_template,
                member_id=member_id,
                issue_key=f"draw:{draw.id}:{entry_no}",
                source="prize",
                at=at,
            )
        except Conflict as exc:
            # Nothing is taken: the caller rolls back, and the entry number is free again.
            raise Conflict(
                f"the prize cannot be given now, so the entry was not taken: {exc.message}",
                field="prize",
                prize=won.code,
            ) from None
    if won.kind == "points" and won.points:
        transfers = adjust_points(
            session,
            program=get_program(session, tenant_id=tenant_id),
            member_id=member_id,
            points=won.points,
            reason=f"lucky draw {draw.code} #{entry_no}: {won.name}",
            actor=actor,
            at=at,
        )
        detail["points_transfer"] = transfers[0].id
    entry = DrawEntry(
        id=new_id("dre"),
        tenant_id=tenant_id,
        draw_id=draw.id,
        entry_no=entry_no,
        member_id=member_id,
        source=source,
        at=at,
        day=day,
        prize_code=won.code,
        coupon_id=coupon.id if coupon else None,
        pickup_code=new_code() if won.kind == "goods" else None,
        detail=detail,
    )
    session.add(entry)
    session.flush()
    if used is not None:
        mark_pass_code_used(session, code=used, entry_id=entry.id, at=at)
    counted = session.execute(
        update(Draw).where(Draw.id == draw.id, Draw.entry_count == entry_no - 1).values(entry_count=entry_no)
    )
    if rowcount(counted) != 1:  # only if the lock were not held: the unique entry number would catch it too
        raise Conflict("another entry took this number: try again", field="draw")
    session.refresh(won)
    return Entered(entry, won, coupon, spent)


def _check_open(draw: Draw, at: datetime) -> None:
    if draw.status != OPEN:
        raise Conflict(f"draw {draw.code!r} is {draw.status}, not open", field="draw")
    if draw.opens_at is not None and at < draw.opens_at:
        raise Conflict(f"draw {draw.code!r} opens at {draw.opens_at.isoformat()}", field="draw")
    if draw.closes_at is not None and at >= draw.closes_at:
        raise Conflict(f"draw {draw.code!r} closed at {draw.closes_at.isoformat()}", field="draw")


def _entries(
    session: Session, draw: Draw, member_id: str, day: date | None = None, source: str | None = None
) -> int:
    query = (
        select(func.count())
        .select_from(DrawEntry)
        .where(DrawEntry.draw_id == draw.id, DrawEntry.member_id == member_id)
    )
    if day is not None:
        query = query.where(DrawEntry.day == day)
    if source is not None:
        query = query.where(DrawEntry.source == source)
    return int(session.scalar(query) or 0)


def _check_limits(session: Session, draw: Draw, member_id: str, day: date) -> None:
    if draw.per_member_limit is not None and _entries(session, draw, member_id) >= draw.per_member_limit:
        raise Conflict(
            f"this member has had the {draw.per_member_limit} entries a member may have", field="member_id"
        )
    daily = draw.per_member_daily_limit
    if daily is not None and _entries(session, draw, member_id, day) >= daily:
        raise Conflict(f"this member has had today's {daily} entries", field="member_id")


def _check_source(
    session: Session,
    keyring: Keyring,
    draw: Draw,
    member_id: str,
    day: date,
    source: str,
    pass_code: str | None,
) -> DrawPassCode | None:
    """Refuses a way in the draw does not offer or the member has used up; the pass code to mark."""
    if source == "free":
        if draw.free_per_day <= 0:
            raise ValidationFailed(f"draw {draw.code!r} has no free entries", field="source")
        if _entries(session, draw, member_id, day, "free") >= draw.free_per_day:
            raise Conflict(f"this member has had today's {draw.free_per_day} free entries", field="source")
    if source == "points" and draw.points_cost is None:
        raise ValidationFailed(f"draw {draw.code!r} is not entered with points", field="source")
    if source != "pass_code":
        return None
    if not draw.pass_codes:
        raise ValidationFailed(f"draw {draw.code!r} takes no pass codes", field="source")
    assert pass_code is not None
    return unused_pass_code(session, keyring=keyring, draw=draw, pass_code=pass_code)
