"""``datong outbox deliver``: send what the outbox holds (WeChat template messages, WeChat Pay profit
sharing and returns), then ask WeChat Pay how splits still processing ended. Run it every minute."""

from __future__ import annotations

from contextlib import ExitStack

import typer
from rich.console import Console
from sqlalchemy import select

from datong.core.cli_context import TenantOpt, brand_context

outbox_app = typer.Typer(
    help="The outbox: calls to WeChat and WeChat Pay after the change commits.", no_args_is_help=True
)
console = Console()


@outbox_app.command("deliver")
def deliver(tenant: TenantOpt = None) -> None:
    """Send every message that is due and has a sender configured; then refresh processing splits."""
    from datong.guides.models import ProfitShare, ProfitShareReturn
    from datong.guides.splits import refresh_profit_share, refresh_return
    from datong.jobs.outbox import deliver_due
    from datong.jobs.senders import configured_senders, profit_sharing_client

    rt, tenant_id = brand_context(tenant)
    with ExitStack() as stack:
        senders = configured_senders(rt, tenant_id, stack)
        counts = deliver_due(rt.db, senders, tenant_id=tenant_id)
        sharing = profit_sharing_client(rt.settings, stack)
        refreshed = 0
        if sharing is not None:
            with rt.db.reading() as s:
                waiting = list(
                    s.scalars(
                        select(ProfitShare.id).where(
                            ProfitShare.tenant_id == tenant_id,
                            ProfitShare.status.in_(("processing", "unknown")),
                        )
                    )
                )
                returns = list(
                    s.scalars(
                        select(ProfitShareReturn.id).where(
                            ProfitShareReturn.tenant_id == tenant_id, ProfitShareReturn.status == "processing"
                        )
                    )
                )
            for share_id in waiting:
                with rt.db.unit_of_work() as s:
                    refreshed += (
                        refresh_profit_share(s, client=sharing, profit_share_id=share_id).status == "finished"
                    )
            for return_id in returns:
                with rt.db.unit_of_work() as s:
                    refresh_return(s, client=sharing, return_id=return_id)
    console.print(
        f"发送完成 {counts['done']}，已受理 {counts['sent']}，待重试 {counts['retry']}，"
        f"失败 {counts['failed']}；分账结果更新 {refreshed} 笔"
    )
    if not senders:
        console.print("没有配置任何发送通道（微信公众号 AppSecret 或 DATONG_WECHATPAY_*），消息保持待发送。")
