"""``datong points …``: load a program, migrate opening balances, earn for imported orders, the expiry
sweeper, tier review, birthday bonuses, clearing between owners, and the ledger check. Each batch is its
own transaction, so a long run that stops keeps what it finished and picks up where it stopped."""

from __future__ import annotations

import csv
import json
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from datong.core.cli_context import ACTOR, TenantOpt, brand_context
from datong.core.clock import CHINA_TZ, as_utc, utcnow
from datong.core.errors import ValidationFailed
from datong.loyalty.models import Program

points_app = typer.Typer(help="Points: programs, migration, expiry, tiers, clearing.", no_args_is_help=True)
console = Console()

ProgramOpt = Annotated[str | None, typer.Option("--program", help="program code (if the brand has several)")]


def _program(s: Session, tenant_id: str, code: str | None) -> Program:
    from datong.loyalty.programs import get_program

    return get_program(s, tenant_id=tenant_id, code=code)


def _moment(text: str | None, field: str) -> datetime:
    if not text:
        return utcnow()
    try:
        return as_utc(datetime.fromisoformat(text))
    except ValueError:
        raise ValidationFailed("a time like 2026-11-23T00:00:00+08:00", field=field) from None


@points_app.command("load-program")
def load_program_cmd(file: Path, tenant: TenantOpt = None) -> None:
    """Create or update a program (tiers, earn rules, rewards) from a JSON file."""
    from datong.loyalty.programs import load_program

    rt, tid = brand_context(tenant)
    try:
        data = json.loads(file.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ValidationFailed(f"cannot read {file}: {exc}", field="file") from None
    with rt.db.unit_of_work() as s:
        program = load_program(s, tenant_id=tid, data=data, actor=ACTOR)
        console.print(f"program {program.code} loaded")


@points_app.command("migrate")
def migrate_cmd(tenant: TenantOpt = None, program: ProgramOpt = None) -> None:
    """Turn the 积分余额 of every imported POS card into points: one migrate transfer per card."""
    from datong.loyalty.migration import migrate_balances

    rt, tid = brand_context(tenant)
    with rt.db.unit_of_work() as s:
        result = migrate_balances(s, program=_program(s, tid, program), actor=ACTOR)
    console.print(
        f"{result.cards} cards migrated ({result.points} points); {result.already} already migrated; "
        f"{result.unresolved} cards ({result.unresolved_points} points) wait for a member: run `datong unify`"
    )


@points_app.command("earn-orders")
def earn_orders_cmd(tenant: TenantOpt = None, program: ProgramOpt = None) -> None:
    """Earn for completed orders (imported Tmall and JD orders) that have not earned yet, and take back
    the points of orders a later export shows closed or refunded."""
    from datong.jobs.points import run_in_batches
    from datong.loyalty.refunds import refund_closed_orders
    from datong.loyalty.service import earn_completed_orders

    rt, tid = brand_context(tenant)
    orders, points = run_in_batches(
        rt.db,
        tenant_id=tid,
        program_code=program,
        step=lambda s, prog, after: earn_completed_orders(s, program=prog, actor=ACTOR, after_id=after),
    )
    console.print(f"{orders} orders earned {points} points")
    orders, points = run_in_batches(
        rt.db,
        tenant_id=tid,
        program_code=program,
        step=lambda s, prog, after: refund_closed_orders(s, program=prog, actor=ACTOR, after_id=after),
    )
    console.print(f"{orders} closed or refunded orders gave back {points} points")


@points_app.command("expire")
def expire_cmd(
    tenant: TenantOpt = None,
    program: ProgramOpt = None,
    at: Annotated[str | None, typer.Option(help="sweep as of this time (default now)")] = None,
) -> None:
    """Move what is left of lots past their expiry to breakage, and void holds past their time."""
    from datong.loyalty.expiry import expire_points
    from datong.loyalty.redemptions import void_timed_out_holds

    rt, tid = brand_context(tenant)
    moment = _moment(at, "at")
    if moment > utcnow():
        # A sweep dated ahead would take points members may still spend today.
        raise ValidationFailed("--at cannot be in the future", field="at")
    lots = points = accounts = holds = 0
    while True:
        with rt.db.unit_of_work() as s:
            result = expire_points(s, program=_program(s, tid, program), at=moment)
        lots, points, accounts = lots + result.lots, points + result.points, accounts + result.accounts
        if result.accounts == 0:
            break
    while True:
        with rt.db.unit_of_work() as s:
            voided = void_timed_out_holds(s, program=_program(s, tid, program), at=moment)
        holds += voided
        if voided == 0:
            break
    console.print(f"{points} points expired from {lots} lots on {accounts} accounts; {holds} holds voided")


@points_app.command("review-tiers")
def review_tiers_cmd(tenant: TenantOpt = None, program: ProgramOpt = None) -> None:
    """The yearly review: set every member to the tier their last 12 months earn, down as well as up."""
    from datong.loyalty.tiers import review_tiers

    rt, tid = brand_context(tenant)
    with rt.db.unit_of_work() as s:
        result = review_tiers(s, program=_program(s, tid, program))
    console.print(f"{result.reviewed} reviewed: {result.upgraded} up, {result.downgraded} down")


@points_app.command("birthday")
def birthday_cmd(
    tenant: TenantOpt = None,
    program: ProgramOpt = None,
    on: Annotated[str | None, typer.Option(help="the day, YYYY-MM-DD (default today in China)")] = None,
) -> None:
    """Pay the tier's birthday bonus to members born on this day (once a year each)."""
    from datong.loyalty.tiers import grant_birthday_bonus

    try:
        day = date.fromisoformat(on) if on else utcnow().astimezone(CHINA_TZ).date()
    except ValueError:
        raise ValidationFailed("a day like 2026-11-23", field="on") from None
    rt, tid = brand_context(tenant)
    with rt.db.unit_of_work() as s:
        paid = grant_birthday_bonus(s, program=_program(s, tid, program), on=day)
    console.print(f"{paid} birthday bonuses paid")


@points_app.command("settle")
def settle_cmd(
    period: Annotated[str, typer.Option(help="the month, YYYY-MM")],
    tenant: TenantOpt = None,
    program: ProgramOpt = None,
    csv_out: Annotated[
        Path | None, typer.Option("--csv", help="write every obligation and its transfers")
    ] = None,
) -> None:
    """What each owner (HQ, agents, franchise stores) owes the others for a month, in fen."""
    from datong.loyalty.clearing import settle

    rt, tid = brand_context(tenant)
    try:
        with rt.db.reading() as s:
            result = settle(s, program=_program(s, tid, program), period=period)
            names = _party_names(s, tid)
    except ValueError as exc:
        raise ValidationFailed(str(exc), field="period") from None
    table = Table(title=f"Points clearing {period} ({result.fen_per_point} fen per point)")
    for column in ("issuer owes", "honoured by", "points", "fen", "transfers"):
        table.add_column(column)
    for o in result.obligations:
        label = names.get(o.debtor, o.debtor), names.get(o.creditor, o.creditor)
        table.add_row(*label, str(o.points), str(result.amount_fen(o)), str(len(o.transfer_ids)))
    console.print(table)
    for n in result.net:
        debtor, creditor = names.get(n.debtor, n.debtor), names.get(n.creditor, n.creditor)
        console.print(f"net: {debtor} pays {creditor} {n.amount_fen} fen")
    if csv_out is not None:
        with csv_out.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["period", "debtor", "creditor", "points", "amount_fen", "transfer_ids"])
            for o in result.obligations:
                writer.writerow(
                    [period, o.debtor, o.creditor, o.points, result.amount_fen(o), " ".join(o.transfer_ids)]
                )
        console.print(f"written to {csv_out}")


def _party_names(s: Session, tenant_id: str) -> dict[str, str]:
    from datong.org.models import Agent, Store

    names = {"hq": "HQ"}
    for agent in s.scalars(select(Agent).where(Agent.tenant_id == tenant_id)):
        names[f"agent:{agent.id}"] = f"{agent.code} {agent.name}"
    for store in s.scalars(select(Store).where(Store.tenant_id == tenant_id)):
        names[f"store:{store.id}"] = f"{store.code} {store.name}"
    return names


@points_app.command("verify")
def verify_cmd(tenant: TenantOpt = None, program: ProgramOpt = None) -> None:
    """Check the ledger: every running total equals the sum of its transfers, no limit is broken, every
    lot agrees with the transfers that name it."""
    from datong.ledger.queries import verify_ledger
    from datong.loyalty.queries import verify_lots

    rt, tid = brand_context(tenant)
    with rt.db.reading() as s:
        accounts = verify_ledger(s, tenant_id=tid)
        lots = verify_lots(s, program=_program(s, tid, program))
    for d in accounts:
        console.print(f"[red]account {d.account_id}[/]: kept {d.kept}, transfers say {d.summed}")
    for lot_id in lots:
        console.print(f"[red]lot {lot_id}[/] disagrees with its transfers")
    if accounts or lots:
        raise typer.Exit(1)
    console.print("ledger consistent")
