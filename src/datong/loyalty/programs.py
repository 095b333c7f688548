"""Programs: loaded from a file the CRM team writes, and the ledger accounts a program's points move
between. Every owner party (HQ, an agent, a franchise store) has its own issuance, redemption and
breakage accounts, so the ledger itself says who issued and who honoured each point."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from datong.core.clock import utcnow
from datong.core.errors import NotFound, ValidationFailed
from datong.coupons.models import CouponTemplate
from datong.ledger import service as ledger
from datong.ledger.models import Account
from datong.loyalty.models import EarnRule, Program, Reward, Tier
from datong.loyalty.rules import HQ, RuleSpec, TierSpec, owner_party
from datong.loyalty.schemas import ProgramIn
from datong.org.models import Store
from datong.tenancy.service import audit

MEMBER = "member"
ISSUANCE = "issuance"  # debited when an owner issues points
REDEMPTION = "redemption"  # credited when an owner honours points
BREAKAGE = "breakage"  # credited when an owner's points expire unspent
ADJUSTMENT = "adjustment"  # the other side of manual corrections


def load_program(session: Session, *, tenant_id: str, data: Any, actor: str) -> Program:
    """Create or update a program, its tiers, earn rules and rewards from a program file's content.
    A rule or reward left out of the file is switched off, never deleted (past earnings name it)."""
    try:
        spec = ProgramIn.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "program"
        raise ValidationFailed(f"{field}: {first['msg']}", field=field) from None
    _check_unique(spec)
    ledger_row = ledger.ensure_ledger(
        session, tenant_id=tenant_id, code=f"points:{spec.code}", unit="points", name=spec.name
    )
    program = session.scalar(select(Program).where(Program.tenant_id == tenant_id, Program.code == spec.code))
    if program is None:
        program = Program(tenant_id=tenant_id, code=spec.code, ledger_id=ledger_row.id)
        session.add(program)
    program.name = spec.name
    program.points_per_yuan = spec.points_per_yuan
    program.fen_per_point = spec.fen_per_point
    program.expiry_policy = spec.expiry.policy
    program.expiry_months = spec.expiry.months
    program.tier_basis = spec.tier_basis
    program.hold_seconds = spec.hold_seconds
    program.updated_at = utcnow()  # always: it keys the process's cache of the rules (program_rules)
    session.flush()
    stores = dict(session.execute(select(Store.code, Store.id).where(Store.tenant_id == tenant_id)).all())
    for index, rule in enumerate(spec.earn_rules):
        missing = [code for code in rule.store_codes if code not in stores]
        if missing:
            raise ValidationFailed(f"no store {missing[0]!r}", field=f"earn_rules.{index}.store_codes")
        row = _row(session, EarnRule, tenant_id, program.id, rule.code)
        row.name, row.channels, row.categories = rule.name, rule.channels, rule.categories
        row.store_ids = [stores[code] for code in rule.store_codes]
        row.starts_at, row.ends_at, row.min_spend_fen = rule.starts_at, rule.ends_at, rule.min_spend_fen
        row.multiplier_pct, row.bonus_points, row.active = rule.multiplier_pct, rule.bonus_points, rule.active
    for tier in spec.tiers:
        row = _row(session, Tier, tenant_id, program.id, tier.code)
        row.name, row.rank, row.threshold = tier.name, tier.rank, tier.threshold
        row.earn_multiplier_pct, row.birthday_bonus_points = (
            tier.earn_multiplier_pct,
            tier.birthday_bonus_points,
        )
    for index, reward in enumerate(spec.rewards):
        if reward.coupon_template is not None and not session.scalar(
            select(CouponTemplate.id).where(
                CouponTemplate.tenant_id == tenant_id, CouponTemplate.code == reward.coupon_template
            )
        ):
            raise ValidationFailed(
                f"no coupon template {reward.coupon_template!r}", field=f"rewards.{index}.coupon_template"
            )
        row = _row(session, Reward, tenant_id, program.id, reward.code)
        row.name, row.kind, row.points_cost, row.active = (
            reward.name,
            reward.kind,
            reward.points_cost,
            reward.active,
        )
        row.coupon_template = reward.coupon_template
    listed_rules, listed_rewards = {r.code for r in spec.earn_rules}, {r.code for r in spec.rewards}
    for rule_row in session.scalars(select(EarnRule).where(EarnRule.program_id == program.id)):
        rule_row.active = rule_row.active and rule_row.code in listed_rules
    for reward_row in session.scalars(select(Reward).where(Reward.program_id == program.id)):
        reward_row.active = reward_row.active and reward_row.code in listed_rewards
    session.flush()
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="points.program_load",
        object_type="loyalty_program",
        object_id=program.id,
        detail={"code": spec.code, "rules": len(spec.earn_rules), "tiers": len(spec.tiers)},
    )
    return program


def _check_unique(spec: ProgramIn) -> None:
    listed: dict[str, list[str]] = {
        "tiers": [t.code for t in spec.tiers],
        "earn_rules": [r.code for r in spec.earn_rules],
        "rewards": [r.code for r in spec.rewards],
    }
    for name, codes in listed.items():
        seen: set[str] = set()
        for index, code in enumerate(codes):
            if code in seen:
                raise ValidationFailed(f"code {code!r} appears twice", field=f"{name}.{index}.code")
            seen.add(code)
    ranks = [tier.rank for tier in spec.tiers]
    if len(set(ranks)) != len(ranks):
        raise ValidationFailed("two tiers share a rank", field="tiers")
    entry = min(spec.tiers, key=lambda tier: tier.rank) if spec.tiers else None
    if entry is not None and entry.threshold != 0:
        raise ValidationFailed("the lowest tier is the entry tier: its threshold is 0", field="tiers")
    for index, rule in enumerate(spec.earn_rules):
        if rule.starts_at and rule.ends_at and rule.ends_at <= rule.starts_at:
            raise ValidationFailed("ends_at is before starts_at", field=f"earn_rules.{index}.ends_at")


def _row(session: Session, model: Any, tenant_id: str, program_id: str, code: str) -> Any:
    row = session.scalar(select(model).where(model.program_id == program_id, model.code == code))
    if row is None:
        row = model(tenant_id=tenant_id, program_id=program_id, code=code)
        session.add(row)
    return row


def get_program(session: Session, *, tenant_id: str, code: str | None = None) -> Program:
    """The named program, or the brand's only program when no code is given."""
    query = select(Program).where(Program.tenant_id == tenant_id)
    if code:
        query = query.where(Program.code == code)
    found = list(session.scalars(query.limit(2)))
    if not found:
        raise NotFound(
            f"no points program {code!r}" if code else "this brand has no points program", field="program"
        )
    if len(found) > 1:
        raise ValidationFailed("this brand has several points programs: name one", field="program")
    return found[0]


@dataclass(frozen=True)
class ProgramRules:
    earn_rules: list[RuleSpec]
    tiers: list[TierSpec]


# Rules and tiers change only through load_program, which moves the program's updated_at; a process keeps
# what it read per (program, updated_at), so a sale does not read them again.
_RULES_CACHE: dict[tuple[str, object], ProgramRules] = {}


def program_rules(session: Session, program: Program) -> ProgramRules:
    key = (program.id, program.updated_at)
    cached = _RULES_CACHE.get(key)
    if cached is None:
        cached = _read_rules(session, program)
        if len(_RULES_CACHE) > 1000:
            _RULES_CACHE.clear()
        _RULES_CACHE[key] = cached
    return cached


def _read_rules(session: Session, program: Program) -> ProgramRules:
    rules = [
        RuleSpec(
            code=r.code,
            channels=r.channels,
            store_ids=r.store_ids,
            categories=r.categories,
            starts_at=r.starts_at,
            ends_at=r.ends_at,
            min_spend_fen=r.min_spend_fen,
            multiplier_pct=r.multiplier_pct,
            bonus_points=r.bonus_points,
        )
        for r in session.scalars(
            select(EarnRule).where(EarnRule.program_id == program.id, EarnRule.active.is_(True))
        )
    ]
    tiers = [
        TierSpec(t.code, t.rank, t.threshold, t.earn_multiplier_pct, t.birthday_bonus_points)
        for t in session.scalars(select(Tier).where(Tier.program_id == program.id).order_by(Tier.rank))
    ]
    return ProgramRules(rules, tiers)


def member_account(session: Session, program: Program, member_id: str, *, lock: bool = False) -> str:
    """A member's points account: its debits may never exceed its credits (no negative balance). Every
    write to a member's points takes ``lock=True`` first, so one member's operations run one at a time."""
    return ledger.ensure_account(
        session,
        tenant_id=program.tenant_id,
        ledger_id=program.ledger_id,
        kind=MEMBER,
        holder=member_id,
        debits_must_not_exceed_credits=True,
        lock=lock,
    )


def member_account_id(session: Session, program: Program, member_id: str) -> str | None:
    """The member's account, if they ever had points (reads never open accounts)."""
    return session.scalar(
        select(Account.id).where(
            Account.tenant_id == program.tenant_id,
            Account.ledger_id == program.ledger_id,
            Account.kind == MEMBER,
            Account.holder == member_id,
        )
    )


def party_account(session: Session, program: Program, kind: str, party: str) -> str:
    return ledger.ensure_account(
        session, tenant_id=program.tenant_id, ledger_id=program.ledger_id, kind=kind, holder=party
    )


def store_party(session: Session, *, tenant_id: str, store_id: str | None) -> str:
    if store_id is None:
        return HQ
    store = session.get(Store, store_id)
    if store is None or store.tenant_id != tenant_id:
        raise NotFound(f"no store {store_id}", field="store_id")
    return owner_party(store_id=store.id, store_kind=store.kind, agent_id=store.agent_id)
