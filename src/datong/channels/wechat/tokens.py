"""The account's access token shared by every worker and process through the database (encrypted),
and a ready :class:`WeChatClient` for an account. WeChat allows few token fetches a day and each new
token may end the previous one, so processes must not each fetch their own."""

from __future__ import annotations

from datetime import datetime

import httpx
from sqlalchemy import select

from datong.channels.wechat.client import CachedToken, WeChatClient
from datong.channels.wechat.models import WechatAccount, WechatToken
from datong.channels.wechat.service import account_secrets
from datong.core.crypto import Keyring
from datong.core.db import Database, upsert_insert
from datong.core.errors import ConfigurationError
from datong.core.ids import new_id

_TABLE = "wechat_token"


class DatabaseTokenCache:
    """A ``TokenCache`` in the ``wechat_token`` table, one row per (brand, appid)."""

    def __init__(self, db: Database, keyring: Keyring, tenant_id: str) -> None:
        self._db, self._keyring, self._tenant_id = db, keyring, tenant_id

    def _seal(self, appid: str, value: str) -> bytes:
        return self._keyring.encrypt(
            value, tenant_id=self._tenant_id, table=_TABLE, row_id=appid, column="token_enc"
        )

    def get(self, key: str) -> CachedToken | None:
        with self._db.reading() as s:
            row = s.scalar(
                select(WechatToken).where(WechatToken.tenant_id == self._tenant_id, WechatToken.appid == key)
            )
            if row is None:
                return None
            value = self._keyring.decrypt(
                row.token_enc, tenant_id=self._tenant_id, table=_TABLE, row_id=key, column="token_enc"
            )
            return CachedToken(value, row.expires_at)

    def set(self, key: str, value: str, *, expires_at: datetime) -> None:
        sealed = self._seal(key, value)
        with self._db.unit_of_work() as s:
            s.execute(
                upsert_insert(s, WechatToken)
                .values(
                    id=new_id("wxt"),
                    tenant_id=self._tenant_id,
                    appid=key,
                    token_enc=sealed,
                    expires_at=expires_at,
                )
                .on_conflict_do_update(
                    index_elements=["tenant_id", "appid"],
                    set_={"token_enc": sealed, "expires_at": expires_at},
                )
            )


def client_for(
    db: Database, keyring: Keyring, account: WechatAccount, *, transport: httpx.BaseTransport | None = None
) -> WeChatClient:
    """A client for the account, its token shared through the database. ``transport`` is for tests."""
    secret = account_secrets(keyring, account).secret
    if not secret:
        raise ConfigurationError(
            f"account {account.appid} has no AppSecret: add it to call WeChat", field="secret"
        )
    return WeChatClient(
        account.appid,
        secret,
        transport=transport,
        token_cache=DatabaseTokenCache(db, keyring, account.tenant_id),
    )
