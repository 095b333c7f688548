"""``datong wechat …``: register an official account (its secrets are read from the environment or a
prompt, never from the command line, where shell history would keep them), rotate the EncodingAESKey,
handle callback messages a crash left in the inbox, and get WeChat tickets for QR codes."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from datong.channels.wechat import service
from datong.core.cli_context import ACTOR, TenantOpt, brand_context

wechat_app = typer.Typer(help="WeChat official accounts: callback, keys, QR tickets.", no_args_is_help=True)
console = Console()


@wechat_app.command("add-account")
def add_account(
    appid: Annotated[str, typer.Option(help="the account's AppID (wx…)")],
    name: Annotated[str, typer.Option(help="the account's name, for people")],
    token: Annotated[str, typer.Option(envvar="DATONG_WECHAT_TOKEN", prompt=True, hide_input=True)],
    aes_key: Annotated[
        str,
        typer.Option(
            envvar="DATONG_WECHAT_AES_KEY", prompt="EncodingAESKey (empty: plain mode)", hide_input=True
        ),
    ] = "",
    secret: Annotated[
        str,
        typer.Option(
            envvar="DATONG_WECHAT_SECRET", prompt="AppSecret (empty: no API calls)", hide_input=True
        ),
    ] = "",
    tenant: TenantOpt = None,
) -> None:
    """Register an account; its callback URL is then /wechat/callback/<appid>."""
    rt, tenant_id = brand_context(tenant)
    with rt.db.unit_of_work() as s:
        service.add_account(
            s,
            tenant_id=tenant_id,
            keyring=rt.keyring,
            actor=ACTOR,
            appid=appid,
            name=name,
            token=token,
            aes_key=aes_key or None,
            secret=secret or None,
        )
    console.print(f"账号 {appid} 已登记。服务器地址: /wechat/callback/{appid}")


@wechat_app.command("rotate-key")
def rotate_key(
    appid: str,
    aes_key: Annotated[str, typer.Option(envvar="DATONG_WECHAT_AES_KEY", prompt=True, hide_input=True)],
    tenant: TenantOpt = None,
) -> None:
    """Make a new EncodingAESKey current; the previous one is still accepted."""
    rt, tenant_id = brand_context(tenant)
    with rt.db.unit_of_work() as s:
        service.rotate_aes_key(
            s, tenant_id=tenant_id, keyring=rt.keyring, actor=ACTOR, appid=appid, aes_key=aes_key
        )
    console.print(f"账号 {appid} 的 EncodingAESKey 已更换，旧密钥仍可解密。")


@wechat_app.command("process")
def process() -> None:
    """Handle every callback message still pending (e.g. after a crash), oldest first."""
    from datong.core.context import load_runtime
    from datong.jobs.wechat import process_pending

    rt = load_runtime()
    counts = process_pending(rt.db, rt.keyring)
    console.print(f"处理完成 {counts['done']} 条，失败 {counts['failed']} 条")


@wechat_app.command("ticket")
def ticket(
    appid: str,
    qr_code_id: str,
    days: Annotated[int, typer.Option(help="a temporary code's life, 1 to 30 days")] = 30,
    tenant: TenantOpt = None,
) -> None:
    """Get the WeChat ticket of a QR code (permanent codes are counted against WeChat's 100,000)."""
    from datong.channels.wechat.tokens import client_for
    from datong.guides.wechat_codes import issue_wechat_ticket

    rt, tenant_id = brand_context(tenant)
    with rt.db.reading() as s:
        account = service.get_account(s, appid=appid, tenant_id=tenant_id)
    with client_for(rt.db, rt.keyring, account) as client:
        code = issue_wechat_ticket(
            rt.db,
            tenant_id=tenant_id,
            qr_code_id=qr_code_id,
            client=client,
            actor=ACTOR,
            expire_seconds=days * 86400,
        )
    console.print(f"{code.scene}: {code.wechat_url} (到期 {code.expires_at or '永久'})")
