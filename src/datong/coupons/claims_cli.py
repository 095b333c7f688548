"""``datong spend-claims …``: check the pending order-number claims again, after an import of orders or
daily from cron. Each batch is its own transaction, so a long run that stops keeps what it finished."""

from __future__ import annotations

import typer
from rich.console import Console

from datong.core.cli_context import TenantOpt, brand_context
from datong.core.clock import utcnow
from datong.coupons.claims import Recheck, recheck_claims

spend_claims_app = typer.Typer(help="Spend-reward claims: recheck order numbers.", no_args_is_help=True)
console = Console()

BATCH = 200


@spend_claims_app.command("recheck")
def recheck_cmd(tenant: TenantOpt = None) -> None:
    """Check every pending order-number claim against the orders imported since: reward it, reject it,
    or leave it pending with its reason (claims older than a week are rejected)."""
    rt, tenant_id = brand_context(tenant)
    total = Recheck()
    at = utcnow()
    while True:
        with rt.db.unit_of_work() as s:
            batch = recheck_claims(s, tenant_id=tenant_id, at=at, after_id=total.last_id, limit=BATCH)
        for name in ("checked", "rewarded", "no_reward", "rejected", "pending"):
            setattr(total, name, getattr(total, name) + getattr(batch, name))
        if batch.checked < BATCH:
            break
        total.last_id = batch.last_id
    console.print(
        f"{total.checked} claims checked: {total.rewarded} rewarded, {total.no_reward} under every band, "
        f"{total.rejected} rejected, {total.pending} still pending"
    )
