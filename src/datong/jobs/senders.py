"""The senders the outbox worker uses, built from the brand's WeChat accounts (in the database) and the
deployment's WeChat Pay settings (``DATONG_WECHATPAY_*``, keys in files). A kind with no sender
configured stays pending, so nothing is lost while a brand has not set one up."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import ExitStack
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from datong.channels.wechat.client import WeChatError
from datong.channels.wechat.models import WechatAccount
from datong.channels.wechat.senders import TEMPLATE, TemplateSender
from datong.channels.wechat.tokens import client_for
from datong.channels.wechatpay.client import WeChatPayClient
from datong.channels.wechatpay.profit_sharing import ProfitSharingClient
from datong.channels.wechatpay.signing import load_merchant_key, load_platform_key
from datong.core.config import Settings
from datong.core.context import Runtime
from datong.core.errors import ConfigurationError
from datong.guides.splits import RETURN, SPLIT, SplitSender
from datong.jobs.models import OutboxMessage
from datong.jobs.outbox import Outcome, Sender

log = logging.getLogger(__name__)


class ByAccount:
    """Template messages go out through the account their payload names (``appid``), or the brand's
    only account."""

    def __init__(self, senders: Mapping[str, TemplateSender]) -> None:
        self.senders = senders

    def __call__(self, session: Session, message: OutboxMessage) -> Outcome:
        appid = message.payload.get("appid")
        if appid is None and len(self.senders) == 1:
            appid = next(iter(self.senders))
        sender = self.senders.get(str(appid))
        if sender is None:
            return Outcome("failed", error=f"no WeChat account {appid} with an AppSecret for this brand")
        return sender(session, message)


def profit_sharing_client(
    settings: Settings, stack: ExitStack, *, transport: httpx.BaseTransport | None = None
) -> ProfitSharingClient | None:
    """The WeChat Pay client, if the deployment configured one (all of mchid, appid, serial, keys).
    ``transport`` is for tests (a local fake)."""
    needed = (
        settings.wechatpay_mchid,
        settings.wechatpay_appid,
        settings.wechatpay_serial_no,
        settings.wechatpay_key_file,
        settings.wechatpay_platform_keys,
    )
    if not any(needed):
        return None
    if not all(needed):
        raise ConfigurationError(
            "WeChat Pay needs DATONG_WECHATPAY_MCHID, _APPID, _SERIAL_NO, _KEY_FILE and "
            "_PLATFORM_KEYS together",
            field="DATONG_WECHATPAY_MCHID",
        )
    assert settings.wechatpay_key_file is not None and settings.wechatpay_platform_keys is not None
    platform = {}
    for item in settings.wechatpay_platform_keys.split(","):
        serial, _, path = item.partition("=")
        if not serial or not path:
            raise ConfigurationError("SERIAL=path[,SERIAL=path]", field="DATONG_WECHATPAY_PLATFORM_KEYS")
        platform[serial.strip()] = load_platform_key(Path(path.strip()).read_bytes())
    pay = stack.enter_context(
        WeChatPayClient(
            str(settings.wechatpay_mchid),
            merchant_serial_no=str(settings.wechatpay_serial_no),
            merchant_private_key=load_merchant_key(settings.wechatpay_key_file.read_bytes()),
            platform_keys=platform,
            transport=transport,
        )
    )
    return ProfitSharingClient(pay, appid=str(settings.wechatpay_appid))


def configured_senders(
    rt: Runtime,
    tenant_id: str,
    stack: ExitStack,
    *,
    wechat_transport: httpx.BaseTransport | None = None,
    pay_transport: httpx.BaseTransport | None = None,
) -> dict[str, Sender]:
    """Every sender the brand and the deployment have what they need for. Transports are for tests."""
    senders: dict[str, Sender] = {}
    with rt.db.reading() as s:
        accounts = list(
            s.scalars(
                select(WechatAccount).where(
                    WechatAccount.tenant_id == tenant_id,
                    WechatAccount.active.is_(True),
                    WechatAccount.secret_enc.is_not(None),
                )
            )
        )
    templates: dict[str, TemplateSender] = {}
    for account in accounts:
        client = stack.enter_context(client_for(rt.db, rt.keyring, account, transport=wechat_transport))
        try:
            # Fetch (or read) the token now, outside any transaction: the shared cache writes it in its
            # own, which SQLite could not do while a delivery's transaction holds the write lock.
            client.access_token()
        except WeChatError as exc:
            log.warning("WeChat account %s: no access token (%s); its messages wait", account.appid, exc)
            continue
        templates[account.appid] = TemplateSender(client)
    if templates:
        senders[TEMPLATE] = ByAccount(templates)
    sharing = profit_sharing_client(rt.settings, stack, transport=pay_transport)
    if sharing is not None:
        split = SplitSender(sharing)
        senders[SPLIT] = split
        senders[RETURN] = split
    return senders
