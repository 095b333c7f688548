"""``datong guides …``: load the brand's guide policy and commission plan, attribute recent online orders,
post and take back commission, a month's statement (CSV, Excel), KPIs, and the hand-over when a guide
leaves. The batch commands commit batch by batch: a run that stops keeps what it finished, and the next
run picks up the rest (``guides/jobs.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from datong.core.cli_context import ACTOR, TenantOpt, brand_context
from datong.core.clock import utcnow
from datong.core.errors import ValidationFailed

guides_app = typer.Typer(
    help="Shopping guides: plan, attribution, commission, statements, KPIs, hand-over.", no_args_is_help=True
)
console = Console()
err = Console(stderr=True)

PeriodOpt = Annotated[str, typer.Option("--period", help="the month, YYYY-MM (China time)")]


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


def _yuan(fen: int) -> str:
    from datong.guides.exports import yuan

    return f"{yuan(fen)}"


@guides_app.command("load-plan")
def load_plan_cmd(file: Path, tenant: TenantOpt = None) -> None:
    """Put a JSON file's guide policy (``guides``: binding, protection_days, window_days, landing_url) and
    commission plan (``commission``: rules) into the brand's settings, after checking every field."""
    from datong.guides.plans import load_plan

    rt, tid = brand_context(tenant)
    try:
        data = json.loads(file.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ValidationFailed(f"cannot read {file}: {exc}", field="file") from None
    with rt.db.unit_of_work() as s:
        loaded = load_plan(s, tenant_id=tid, data=data, actor=ACTOR)
    console.print(f"loaded {' and '.join(loaded)}")


@guides_app.command("attribute")
def attribute_cmd(
    tenant: TenantOpt = None,
    days: Annotated[
        int, typer.Option(min=1, max=3660, help="look at orders placed this many days back")
    ] = 60,
) -> None:
    """Credit recent online orders (mini-program, e-shop, imported Tmall and JD) not credited yet to the
    guide or store the written rules pick (docs/guides.md)."""
    from datong.guides import jobs

    rt, tid = brand_context(tenant)
    since = jobs.recent_since(days=days)
    with rt.db.reading() as s:
        total = jobs.count_to_attribute(s, tenant_id=tid, since=since)
    with _progress() as bar:
        task = bar.add_task("attribute", total=total)
        seen, credited, fen = jobs.run_batches(
            rt.db,
            step=lambda s, after: jobs.attribute_orders(s, tenant_id=tid, since=since, after_id=after),
            on_batch=lambda n, _c, _f: bar.update(task, completed=n),
        )
    console.print(f"{seen} orders looked at, {credited} credited ({_yuan(fen)} yuan)")


@guides_app.command("commission")
def commission_cmd(tenant: TenantOpt = None) -> None:
    """Post the commission of completed credited orders, and take it back for refunded or closed ones."""
    from datong.guides import jobs

    rt, tid = brand_context(tenant)
    with rt.db.reading() as s:
        to_post = jobs.count_to_post(s, tenant_id=tid)
        to_claw = jobs.count_to_claw_back(s, tenant_id=tid)
    at = utcnow()
    with _progress() as bar:
        posting = bar.add_task("post", total=to_post)
        _seen, posted, earned = jobs.run_batches(
            rt.db,
            step=lambda s, after: jobs.post_commissions(s, tenant_id=tid, actor=ACTOR, after_id=after, at=at),
            on_batch=lambda n, _c, _f: bar.update(posting, completed=n),
        )
        clawing = bar.add_task("take back", total=to_claw)
        _seen, clawed, taken = jobs.run_batches(
            rt.db,
            step=lambda s, after: jobs.claw_back_commissions(
                s, tenant_id=tid, actor=ACTOR, after_id=after, at=at
            ),
            on_batch=lambda n, _c, _f: bar.update(clawing, completed=n),
        )
    console.print(f"{posted} orders earned {_yuan(earned)} yuan of commission")
    console.print(f"{clawed} refunded or closed orders gave back {_yuan(taken)} yuan")


@guides_app.command("statement")
def statement_cmd(
    period: PeriodOpt,
    tenant: TenantOpt = None,
    csv_out: Annotated[
        Path | None, typer.Option("--csv", help="write the summary here, and the lines beside it (-lines)")
    ] = None,
    xlsx_out: Annotated[
        Path | None, typer.Option("--xlsx", help="write both tables as an Excel file")
    ] = None,
) -> None:
    """Each guide's commission for a month: orders, earned, taken back, adjusted, due."""
    from datong.guides import exports
    from datong.guides.queries import commission_statement

    if csv_out is not None and xlsx_out is not None:
        raise ValidationFailed("write --csv or --xlsx, one of them", field="xlsx")
    rt, tid = brand_context(tenant)
    with rt.db.reading() as s:
        rows, lines = commission_statement(s, tenant_id=tid, period=period)
    table = Table(title=f"导购佣金 {period}")
    for column in exports.SUMMARY_HEADER:
        table.add_column(column, justify="right" if "(" in column or column == "订单数" else "left")
    for values in exports.summary_table(rows)[1:]:
        table.add_row(*("" if v is None else str(v) for v in values))
    console.print(table)
    if csv_out is not None:
        lines_out = csv_out.with_name(f"{csv_out.stem}-lines{csv_out.suffix or '.csv'}")
        csv_out.write_bytes(exports.statement_csv(rows, lines, part="summary"))
        lines_out.write_bytes(exports.statement_csv(rows, lines, part="lines"))
        console.print(f"written to {csv_out} and {lines_out}", soft_wrap=True)  # a path unbroken
    if xlsx_out is not None:
        xlsx_out.write_bytes(exports.statement_xlsx(period, rows, lines))
        console.print(f"written to {xlsx_out}", soft_wrap=True)


@guides_app.command("kpis")
def kpis_cmd(
    period: PeriodOpt,
    tenant: TenantOpt = None,
    by: Annotated[str, typer.Option("--by", help="guide, store or agent")] = "guide",
) -> None:
    """Fans added, members bound, attributed orders and GMV, and commission, for a month."""
    from datong.guides import views
    from datong.guides.queries import guide_kpis

    rt, tid = brand_context(tenant)
    with rt.db.reading() as s:
        found = guide_kpis(s, tenant_id=tid, period=period, by=by)
        rows = views.kpis(s, tenant_id=tid, by=by, found=found)
    table = Table(title=f"导购 KPI {period} — by {by}")
    for column in ("code", "name", "fans", "bound", "orders", "GMV (yuan)", "commission (yuan)"):
        table.add_column(column, justify="left" if column in ("code", "name") else "right")
    for r in rows:
        table.add_row(
            r["code"] or "—",
            r["name"] or "(no agent)",
            str(r["fans_added"]),
            str(r["members_bound"]),
            str(r["attributed_orders"]),
            _yuan(r["attributed_gmv_fen"]),
            _yuan(r["commission_fen"]),
        )
    console.print(table)


@guides_app.command("hand-over")
def hand_over_cmd(
    guide_code: Annotated[str, typer.Argument(help="the guide who leaves")],
    tenant: TenantOpt = None,
    to_guide: Annotated[
        str | None, typer.Option("--to-guide", help="the guide who takes the members")
    ] = None,
    to_store: Annotated[
        str | None, typer.Option("--to-store", help="or the store whose pool takes them")
    ] = None,
) -> None:
    """A guide leaves: marked as left, and their members go to another guide or to a store's pool."""
    from datong.guides.scope import GuideScope, visible_guide, visible_store
    from datong.guides.service import hand_over_members

    if (to_guide is None) == (to_store is None):
        raise ValidationFailed("give --to-guide CODE or --to-store CODE, one of them", field="to_guide")
    rt, tid = brand_context(tenant)
    brand = GuideScope(tid, everything=True)
    with rt.db.unit_of_work() as s:
        leaving = visible_guide(s, brand, guide_code)
        heir = visible_guide(s, brand, to_guide, field="to_guide") if to_guide else None
        pool = visible_store(s, brand, to_store, field="to_store") if to_store else None
        moved = hand_over_members(
            s,
            tenant_id=tid,
            guide_id=leaving.id,
            actor=ACTOR,
            at=utcnow(),
            to_guide_id=heir.id if heir else None,
            to_store_id=pool.id if pool else None,
        )
    console.print(f"{guide_code} has left; {moved} members moved to {to_guide or f'the pool of {to_store}'}")


@guides_app.command("split")
def split_cmd(
    channel: str,
    order_no: str,
    transaction_id: Annotated[str, typer.Option(help="WeChat Pay's id of the order's payment")],
    tenant: TenantOpt = None,
) -> None:
    """Ask WeChat Pay to split a completed order's payment under the brand's profit_sharing plan
    (sent by `datong outbox deliver`)."""
    from datong.guides.splits import request_profit_sharing
    from datong.orders.service import get_order

    rt, tid = brand_context(tenant)
    with rt.db.unit_of_work() as s:
        order = get_order(s, tenant_id=tid, channel=channel, order_no=order_no)
        shares = request_profit_sharing(
            s, tenant_id=tid, order_id=order.id, transaction_id=transaction_id, actor=ACTOR
        )
        lines = [(p.out_order_no, r["party"], r["amount_fen"]) for p in shares for r in p.receivers]
    if not lines:
        console.print("无需分账：只有总部收款")
    for out_order_no, party, fen in lines:
        console.print(f"{out_order_no}  {party}  {_yuan(fen)} 元")


@guides_app.command("split-resend")
def split_resend_cmd(profit_share_id: str, tenant: TenantOpt = None) -> None:
    """Send a failed profit-sharing request again (the same out_order_no: never paid twice)."""
    from datong.guides.splits import resend_profit_share

    rt, tid = brand_context(tenant)
    with rt.db.unit_of_work() as s:
        share = resend_profit_share(s, tenant_id=tid, profit_share_id=profit_share_id, actor=ACTOR)
        console.print(f"{share.out_order_no}: 已重新排队")


@guides_app.command("split-return")
def split_return_cmd(
    profit_share_id: str,
    mchid: Annotated[str, typer.Option(help="the merchant receiver to take money back from")],
    amount_fen: Annotated[int, typer.Option(help="how much, in fen")],
    reason: Annotated[str, typer.Option(help="shown to the receiver, at most 80 characters")],
    tenant: TenantOpt = None,
) -> None:
    """Take money back (回退) from a merchant receiver of a finished split, e.g. after a refund."""
    from datong.guides.splits import request_return

    rt, tid = brand_context(tenant)
    with rt.db.unit_of_work() as s:
        back = request_return(
            s,
            tenant_id=tid,
            profit_share_id=profit_share_id,
            return_mchid=mchid,
            amount_fen=amount_fen,
            reason=reason,
            actor=ACTOR,
        )
        console.print(f"{back.out_return_no}: 回退 {_yuan(amount_fen)} 元已排队")
