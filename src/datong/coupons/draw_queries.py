"""Reads for lucky draws: a draw and its prizes, a member's entries, the numbers HQ watches, and the audit
(``audit_draw`` gives what an auditor needs; ``verify_draw`` replays the stored log with ``draws.replay``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from datong.core.crypto import Keyring
from datong.core.db import is_sqlite
from datong.core.errors import NotFound
from datong.coupons import draws
from datong.coupons.models import Coupon, Draw, DrawEntry, DrawPrize

DRAFT, OPEN, CLOSED = "draft", "open", "closed"


def get_draw(session: Session, *, tenant_id: str, code: str, lock: bool = False) -> Draw:
    """The brand's draw; with ``lock``, held until the transaction ends and read afresh."""
    query = select(Draw).where(Draw.tenant_id == tenant_id, Draw.code == code)
    if lock:
        query = query.execution_options(populate_existing=True)
        if not is_sqlite(session):  # SQLite's writers already take turns (BEGIN IMMEDIATE)
            query = query.with_for_update()
    draw = session.scalar(query)
    if draw is None:
        raise NotFound(f"no draw {code!r}", field="draw")
    return draw


def draw_prizes(session: Session, draw: Draw) -> list[DrawPrize]:
    """The prizes in the order of their weight bands, read afresh (their stock moves)."""
    return list(
        session.scalars(
            select(DrawPrize)
            .where(DrawPrize.draw_id == draw.id)
            .order_by(DrawPrize.position)
            .execution_options(populate_existing=True)
        )
    )


def draw_seed(keyring: Keyring, draw: Draw) -> bytes:
    text = keyring.decrypt(
        draw.seed_enc, tenant_id=draw.tenant_id, table="draw", row_id=draw.id, column="seed_enc"
    )
    return bytes.fromhex(text)


# --- reading and auditing ---------------------------------------------------------------------------


def member_entries(
    session: Session, *, tenant_id: str, code: str, member_id: str
) -> list[tuple[DrawEntry, DrawPrize, str | None]]:
    """The member's entries in the draw, in order: (entry, its prize, the code of the coupon it gave)."""
    draw = get_draw(session, tenant_id=tenant_id, code=code)
    rows = session.execute(
        select(DrawEntry, DrawPrize, Coupon.code)
        .join(DrawPrize, (DrawPrize.draw_id == DrawEntry.draw_id) & (DrawPrize.code == DrawEntry.prize_code))
        .outerjoin(Coupon, Coupon.id == DrawEntry.coupon_id)
        .where(DrawEntry.draw_id == draw.id, DrawEntry.member_id == member_id)
        .order_by(DrawEntry.entry_no)
    ).all()
    return [(entry, prize, coupon_code) for entry, prize, coupon_code in rows]


def entry_prize(session: Session, entry: DrawEntry) -> tuple[DrawPrize, str | None]:
    """What an entry won: its prize, and the code of the coupon it gave."""
    prize = session.scalar(
        select(DrawPrize).where(DrawPrize.draw_id == entry.draw_id, DrawPrize.code == entry.prize_code)
    )
    assert prize is not None, entry.id
    coupon = session.get(Coupon, entry.coupon_id) if entry.coupon_id else None
    return prize, coupon.code if coupon else None


def draw_stats(session: Session, *, tenant_id: str, code: str) -> dict[str, Any]:
    """Entries (all, by way in, members), and per prize: stock, remaining, won, collected."""
    draw = get_draw(session, tenant_id=tenant_id, code=code)
    by_source = dict(
        session.execute(
            select(DrawEntry.source, func.count())
            .where(DrawEntry.draw_id == draw.id)
            .group_by(DrawEntry.source)
        ).all()
    )
    members = session.scalar(
        select(func.count(func.distinct(DrawEntry.member_id))).where(DrawEntry.draw_id == draw.id)
    )
    won = dict(
        session.execute(
            select(DrawEntry.prize_code, func.count())
            .where(DrawEntry.draw_id == draw.id)
            .group_by(DrawEntry.prize_code)
        ).all()
    )
    collected = dict(
        session.execute(
            select(DrawEntry.prize_code, func.count())
            .where(DrawEntry.draw_id == draw.id, DrawEntry.collected_at.is_not(None))
            .group_by(DrawEntry.prize_code)
        ).all()
    )
    return {
        "code": draw.code,
        "status": draw.status,
        "entries": draw.entry_count,
        "members": int(members or 0),
        "by_source": {name: int(by_source.get(name, 0)) for name in ("pass_code", "points", "free")},
        "prizes": [
            {
                "code": p.code,
                "name": p.name,
                "kind": p.kind,
                "stock": p.stock,
                "remaining": p.remaining,
                "won": int(won.get(p.code, 0)),
                "collected": int(collected.get(p.code, 0)),
            }
            for p in draw_prizes(session, draw)
        ],
    }


@dataclass(frozen=True)
class DrawAudit:
    """What an auditor needs: the commitment published before the draw, the prize table, the log of
    every entry's number and prize, and (once closed) the seed."""

    draw_id: str
    code: str
    status: str
    commitment: str
    prizes: list[draws.Prize]  # in the order of their weight bands (position 0, 1, …)
    log: list[tuple[int, str]]
    seed: str | None  # hex

    def as_dict(self) -> dict[str, Any]:
        return {
            "draw_id": self.draw_id,
            "code": self.code,
            "status": self.status,
            "commitment": self.commitment,
            "prizes": [
                {"position": i, "code": p.code, "weight": p.weight, "stock": p.stock}
                for i, p in enumerate(self.prizes)
            ],
            "log": [[n, prize] for n, prize in self.log],
            "seed": self.seed,
        }


def audit_draw(session: Session, *, tenant_id: str, code: str) -> DrawAudit:
    draw = get_draw(session, tenant_id=tenant_id, code=code)
    log = session.execute(
        select(DrawEntry.entry_no, DrawEntry.prize_code)
        .where(DrawEntry.draw_id == draw.id)
        .order_by(DrawEntry.entry_no)
    ).all()
    return DrawAudit(
        draw.id,
        draw.code,
        draw.status,
        draw.commitment,
        [draws.Prize(p.code, p.weight, p.stock) for p in draw_prizes(session, draw)],
        [(int(n), str(prize)) for n, prize in log],
        draw.revealed_seed,
    )


@dataclass(frozen=True)
class Verdict:
    entries: int
    mismatches: list[draws.Mismatch]
    problems: list[str] = field(default_factory=list)  # the seed, the numbering, the stock counters

    @property
    def fair(self) -> bool:
        return not self.mismatches and not self.problems


def verify_draw(session: Session, *, tenant_id: str, code: str, keyring: Keyring) -> Verdict:
    """Replay the stored log with ``draws.replay``: every outcome recomputed from the seed (the revealed
    one once closed; before that the kept one, for the brand's own check), and the stock counters
    checked against the log."""
    found = audit_draw(session, tenant_id=tenant_id, code=code)
    draw = get_draw(session, tenant_id=tenant_id, code=code)
    kept = draw_seed(keyring, draw)
    problems = []
    if found.seed is not None and found.seed != kept.hex():
        problems.append("the revealed seed is not the seed kept since the draw was made")
    seed = bytes.fromhex(found.seed) if found.seed else kept
    try:
        mismatches = draws.replay(seed, found.commitment, found.draw_id, found.prizes, found.log)
    except ValueError as exc:
        return Verdict(len(found.log), [], [*problems, str(exc)])
    if draw.entry_count != len(found.log):
        problems.append(f"the draw counts {draw.entry_count} entries; the log has {len(found.log)}")
    won: dict[str, int] = {}
    for _n, prize_code in found.log:
        won[prize_code] = won.get(prize_code, 0) + 1
    for row in draw_prizes(session, draw):
        if row.stock is not None and row.remaining != row.stock - won.get(row.code, 0):
            problems.append(
                f"prize {row.code!r}: {row.remaining} left, but {row.stock} less {won.get(row.code, 0)} won"
            )
    return Verdict(len(found.log), mismatches, problems)
