"""``datong coupons …``: issue a template's coupon to a member list file, set a store's allocation, and
the report of a template (in total and per store)."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from datong.core.cli_context import ACTOR, TenantOpt, brand_context
from datong.core.clock import as_utc, utcnow
from datong.core.errors import ValidationFailed

coupons_app = typer.Typer(help="Coupons: bulk issuing, store allocations, reports.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

REPORT_HEADER = (
    "scope",
    "store_code",
    "issued",
    "redeemed",
    "expired",
    "redemption_rate",
    "gmv_fen",
    "average_with_fen",
    "average_without_fen",
)


def _moment(text: str | None, field: str) -> datetime | None:
    if not text:
        return None
    try:
        return as_utc(datetime.fromisoformat(text))
    except ValueError:
        raise ValidationFailed("a time like 2026-11-23T00:00:00+08:00", field=field) from None


@coupons_app.command("issue-bulk")
def issue_bulk(
    template: Annotated[str, typer.Option(help="the template's code")],
    file: Annotated[Path, typer.Option(help="CSV or .xlsx: member_id, card_no or phone; optional issue_key")],
    card_source: Annotated[
        str | None, typer.Option(help="the system the file's card numbers come from, e.g. pos_hq")
    ] = None,
    errors: Annotated[Path | None, typer.Option(help="write the rows not issued here (CSV)")] = None,
    tenant: TenantOpt = None,
) -> None:
    """One coupon per member of the file. The same file again resumes where it stopped, or issues
    nothing more once done; rows that cannot be issued are kept with the reason (--errors)."""
    from datong.channels.files import read_rows
    from datong.coupons.bulk import run_bulk_issue

    rt, tid = brand_context(tenant)
    try:
        total = sum(1 for _ in read_rows(file))
    except (ValueError, OSError) as exc:
        raise ValidationFailed(f"cannot read {file.name}: {exc}", field="file") from None
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    )
    with progress:
        task = progress.add_task(f"{template} ← {file.name}", total=total)
        batch = run_bulk_issue(
            rt.db,
            rt.keyring,
            tenant_id=tid,
            template_code=template,
            path=file,
            actor=ACTOR,
            card_source=card_source,
            progress=lambda b: progress.update(task, completed=b.rows_seen),
        )
    table = Table(title=f"coupon batch {batch.id} — {batch.status}")
    for column in ("rows", "issued", "already", "failed"):
        table.add_column(column, justify="right")
    table.add_row(
        *(str(n) for n in (batch.rows_seen, batch.rows_issued, batch.rows_already, batch.rows_failed))
    )
    console.print(table)
    if errors is not None:
        from datong.coupons.queries import ERROR_REPORT_HEADER, error_rows

        with rt.db.reading() as s, errors.open("w", newline="", encoding="utf-8-sig") as handle:
            writer = csv.writer(handle)
            writer.writerow(ERROR_REPORT_HEADER)
            writer.writerows(error_rows(s, rt.keyring, batch.id))
        console.print(f"{batch.rows_failed} rows not issued written to {errors}")


@coupons_app.command("allocate")
def allocate(
    template: Annotated[str, typer.Option(help="the template's code")],
    store: Annotated[str, typer.Option(help="the store's code")],
    quantity: Annotated[int, typer.Option(help="coupons the store may give out")],
    tenant: TenantOpt = None,
) -> None:
    """Set a store's share of the template's budget (audited)."""
    from datong.coupons.service import set_allocation
    from datong.org.queries import store_by_code

    rt, tid = brand_context(tenant)
    with rt.db.unit_of_work() as s:
        found = store_by_code(s, tenant_id=tid, code=store, field="store")
        row = set_allocation(
            s, tenant_id=tid, template_code=template, store_id=found.id, quantity=quantity, actor=ACTOR
        )
        console.print(f"{template} at {store}: {row.quantity} allocated, {row.issued} given out")


@coupons_app.command("report")
def report(
    code: Annotated[str, typer.Argument(help="the template's code")],
    csv_out: Annotated[Path | None, typer.Option("--csv", help="also write the rows here")] = None,
    since: Annotated[str | None, typer.Option(help="from, e.g. 2026-11-01T00:00:00+08:00")] = None,
    until: Annotated[str | None, typer.Option(help="to (exclusive); default: now")] = None,
    tenant: TenantOpt = None,
) -> None:
    """Issued, redeemed, expired, redemption rate, GMV, average order with and without a coupon: for the
    template, then per store (issued through the store, redeemed at it)."""
    from datong.coupons.queries import figures_view, store_rows
    from datong.coupons.reports import store_report, template_report
    from datong.coupons.service import get_template

    rt, tid = brand_context(tenant)
    start, now = _moment(since, "since"), utcnow()
    end = _moment(until, "until") or now
    with rt.db.reading() as s:
        row = get_template(s, tenant_id=tid, code=code)
        window: dict[str, Any] = {"tenant_id": tid, "since": start, "until": end, "at": now}
        [total] = template_report(s, template_id=row.id, **window)
        stores = store_rows(s, store_report(s, template_id=row.id, **window))
    lines = [["template", "", *figures_view(total).values()]]
    lines += [["store", r["store_code"], *(r[k] for k in REPORT_HEADER[2:])] for r in stores]
    table = Table(title=f"{row.code} {row.name}")
    for column in REPORT_HEADER:
        table.add_column(column, justify="left" if column in ("scope", "store_code") else "right")
    for line in lines:
        table.add_row(*("" if v is None else str(v) for v in line))
    console.print(table)
    if csv_out is not None:
        with csv_out.open("w", newline="", encoding="utf-8-sig") as handle:
            writer = csv.writer(handle)
            writer.writerow(REPORT_HEADER)
            writer.writerows(lines)
        console.print(f"{len(lines)} rows written to {csv_out}")
