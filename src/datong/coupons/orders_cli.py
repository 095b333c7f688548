"""``datong coupon-orders …``: redeem the brand coupon codes written on imported Tmall/JD orders, reverse
them on orders a later export shows closed, and list the codes that were not redeemed, with why.
See docs/coupon-orders.md."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from datong.core.cli_context import TenantOpt, brand_context

coupon_orders_app = typer.Typer(
    help="Coupons on imported channel orders: redeem, reverse on refunds, list problems.",
    no_args_is_help=True,
)
console = Console()

ACTOR = "system:coupon-orders"
PROBLEM_COLUMNS = (
    "channel",
    "order_no",
    "order_status",
    "member_id",
    "code",
    "status",
    "reasons",
    "reason",
    "checked_at",
)


@coupon_orders_app.command("redeem")
def redeem_cmd(
    tenant: TenantOpt = None,
    retry_refused: Annotated[
        bool, typer.Option("--retry-refused", help="look again at codes refused before (after a fix)")
    ] = False,
) -> None:
    """Redeem the coupon codes of imported orders (once per coupon and order, at the paid time), then
    reverse those of orders since closed or refunded. Run it after each import of channel orders."""
    from datong.coupons.orders import run_order_coupons

    rt, tid = brand_context(tenant)
    with console.status("coupons on imported orders") as status:
        totals = run_order_coupons(
            rt.db,
            tenant_id=tid,
            actor=ACTOR,
            retry_refused=retry_refused,
            on_batch=lambda t: status.update(f"coupons on imported orders: {t.redeemed} redeemed so far"),
        )
    if retry_refused:
        console.print(f"{totals.retried} refused codes looked at again")
    console.print(
        f"{totals.redeemed} coupons redeemed on imported orders, {totals.refused} refused, "
        f"{totals.waiting} waiting (order not paid, or not linked to a member yet); "
        f"{totals.reversed} redemptions reversed and {totals.voided} unused spend rewards voided "
        "on closed or refunded orders"
    )
    if totals.refused or totals.waiting:
        console.print("the codes not redeemed, with why: datong coupon-orders problems --csv FILE")


@coupon_orders_app.command("problems")
def problems_cmd(
    tenant: TenantOpt = None,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="write every row to this CSV file")] = None,
) -> None:
    """The coupon codes on imported orders that were not redeemed: refused (with every reason) or still
    waiting. Printed, or written to a CSV file (UTF-8 with a BOM, for Excel)."""
    from datong.orders.queries import order_coupon_problems

    rt, tid = brand_context(tenant)
    with rt.db.reading() as s:
        rows = order_coupon_problems(s, tenant_id=tid)
    if csv_path is not None:
        with csv_path.open("w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=PROBLEM_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        console.print(f"{len(rows)} codes not redeemed written to {csv_path}")
        return
    if not rows:
        console.print("every coupon code on imported orders is redeemed")
        return
    table = Table("channel", "order", "code", "status", "why")
    for row in rows:
        table.add_row(row["channel"], row["order_no"], row["code"], row["status"], row["reason"])
    console.print(table)
