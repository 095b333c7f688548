"""A brand's WeChat official accounts and the callback inbox.

``receive`` stores a message before the callback answers (so WeChat's retries change nothing and a
crash after the answer loses nothing); ``process_message`` does the work afterwards: a follow or a scan
of a parametric code becomes a touch (and maybe a binding) for the code's guide or store, an unfollow
forgets what the account told us about the user, a location report is kept only with the member's
consent, menu clicks and views become behaviour events, and a template message's delivery report
reaches its outbox row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from datong.channels.wechat import callback
from datong.channels.wechat.models import (
    DONE,
    FAILED,
    MAX_ATTEMPTS,
    PENDING,
    PROCESSING,
    WechatAccount,
    WechatInbox,
)
from datong.core.clock import utcnow
from datong.core.crypto import Keyring
from datong.core.db import upsert_insert
from datong.core.errors import Conflict, NotFound, ValidationFailed
from datong.core.ids import new_id
from datong.tenancy.service import audit

_TABLE = "wechat_account"


@dataclass(frozen=True)
class AccountSecrets:
    token: str
    aes_keys: list[str]  # current first
    secret: str | None

    def cipher(self, appid: str) -> callback.SafeModeCipher | None:
        return callback.SafeModeCipher(self.aes_keys, appid) if self.aes_keys else None


def _seal(keyring: Keyring, account: WechatAccount, column: str, text: str) -> bytes:
    return keyring.encrypt(text, tenant_id=account.tenant_id, table=_TABLE, row_id=account.id, column=column)


def _open(keyring: Keyring, account: WechatAccount, column: str, blob: bytes | None) -> str | None:
    if not blob:
        return None
    return keyring.decrypt(blob, tenant_id=account.tenant_id, table=_TABLE, row_id=account.id, column=column)


def add_account(
    session: Session,
    *,
    tenant_id: str,
    keyring: Keyring,
    actor: str,
    appid: str,
    name: str,
    token: str,
    aes_key: str | None = None,
    secret: str | None = None,
) -> WechatAccount:
    """Register an official account: its appid, the callback Token, the EncodingAESKey (safe mode) and
    the AppSecret (for the API), all but the appid encrypted. Audited; the secrets never are."""
    if not appid.strip():
        raise ValidationFailed("an account has an appid", field="appid")
    if not token.strip():
        raise ValidationFailed("the callback Token is required", field="token")
    if aes_key is not None:
        callback.SafeModeCipher([aes_key], appid)  # checks the key's form, naming the setting
    if session.scalar(select(WechatAccount.id).where(WechatAccount.appid == appid)):
        raise Conflict(f"account {appid} is registered already", field="appid")
    account = WechatAccount(id=new_id("wxa"), tenant_id=tenant_id, appid=appid, name=name, active=True)
    account.token_enc = _seal(keyring, account, "token_enc", token)
    account.aes_keys_enc = _seal(keyring, account, "aes_keys_enc", json.dumps([aes_key] if aes_key else []))
    account.secret_enc = _seal(keyring, account, "secret_enc", secret) if secret else None
    session.add(account)
    session.flush()
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="wechat.account_add",
        object_type="wechat_account",
        object_id=account.id,
        detail={"appid": appid, "safe_mode": aes_key is not None},
    )
    return account


def rotate_aes_key(
    session: Session, *, tenant_id: str, keyring: Keyring, actor: str, appid: str, aes_key: str
) -> None:
    """A new EncodingAESKey: it comes first, and the previous one is still accepted (WeChat may still
    send messages sealed with it for a while); older ones are dropped."""
    account = get_account(session, appid=appid, tenant_id=tenant_id)
    callback.SafeModeCipher([aes_key], appid)
    current = account_secrets(keyring, account).aes_keys
    account.aes_keys_enc = _seal(keyring, account, "aes_keys_enc", json.dumps([aes_key, *current[:1]]))
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="wechat.aes_key_rotate",
        object_type="wechat_account",
        object_id=account.id,
        detail={"appid": appid},
    )


def get_account(session: Session, *, appid: str, tenant_id: str | None = None) -> WechatAccount:
    account = session.scalar(select(WechatAccount).where(WechatAccount.appid == appid))
    if account is None or not account.active or (tenant_id is not None and account.tenant_id != tenant_id):
        raise NotFound("no such WeChat account", field="appid")
    return account


def account_secrets(keyring: Keyring, account: WechatAccount) -> AccountSecrets:
    token = _open(keyring, account, "token_enc", account.token_enc)
    assert token is not None
    keys = json.loads(_open(keyring, account, "aes_keys_enc", account.aes_keys_enc) or "[]")
    return AccountSecrets(token, keys, _open(keyring, account, "secret_enc", account.secret_enc))


def request_key(params: Mapping[str, str]) -> str:
    """The signed request's identity: its timestamp, nonce and signatures."""
    parts = [params.get(name, "") for name in ("timestamp", "nonce", "signature", "msg_signature")]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def receive(
    session: Session,
    *,
    account: WechatAccount,
    message: callback.Message,
    at: datetime | None = None,
    request: str | None = None,
) -> tuple[WechatInbox, bool]:
    """Keep a message in the inbox, once: a retry of the same push returns the first row, unchanged.
    A signed request (``request``, see :func:`request_key`) that already brought another message is
    refused: plain mode signs the URL, not the body, so that is a captured URL replayed."""
    key = callback.dedupe_key(message)
    if request is not None:
        other = session.scalar(
            select(WechatInbox.id).where(
                WechatInbox.tenant_id == account.tenant_id,
                WechatInbox.request_key == request,
                WechatInbox.dedupe_key != key,
            )
        )
        if other is not None:
            raise callback.BadSignature("this signed request was used for another message", field="nonce")
    query = select(WechatInbox).where(
        WechatInbox.tenant_id == account.tenant_id,
        WechatInbox.appid == account.appid,
        WechatInbox.dedupe_key == key,
    )
    result = session.execute(
        upsert_insert(session, WechatInbox)
        .values(
            id=new_id("wxi"),
            tenant_id=account.tenant_id,
            appid=account.appid,
            dedupe_key=key,
            request_key=request,
            openid=message.from_user,
            event=message.event or message.msg_type,
            message=dict(message.raw),
            received_at=at or utcnow(),
            status=PENDING,
            attempts=0,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "appid", "dedupe_key"])
        .returning(WechatInbox.id)
    )
    created = result.scalar() is not None
    row = session.scalar(query)
    assert row is not None
    return row, created


def pending_inbox(session: Session, *, limit: int = 100, tenant_id: str | None = None) -> list[str]:
    """Ids of messages not yet handled (oldest first): left by a crash after the answer, or failed
    fewer than ``MAX_ATTEMPTS`` times (a database that was briefly away)."""
    query = select(WechatInbox.id).where(
        (WechatInbox.status == PENDING)
        | ((WechatInbox.status == FAILED) & (WechatInbox.attempts < MAX_ATTEMPTS))
    )
    if tenant_id is not None:
        query = query.where(WechatInbox.tenant_id == tenant_id)
    return list(session.scalars(query.order_by(WechatInbox.received_at, WechatInbox.id).limit(limit)))


def mark(
    session: Session, *, inbox_id: str, status: str, error: str | None = None, member_id: str | None = None
) -> None:
    if status not in (DONE, FAILED, PENDING, PROCESSING):
        raise ValueError(status)
    session.execute(
        update(WechatInbox)
        .where(WechatInbox.id == inbox_id)
        .values(
            status=status,
            error=error[:500] if error else None,
            member_id=member_id,
            processed_at=utcnow(),
            attempts=WechatInbox.attempts + 1,
        )
    )
