"""What each WeChat callback event does, after the callback has answered (see ``service.py``).

- ``subscribe`` / ``SCAN``: the follower is a member (registered through the account if new); a scene
  from a parametric code is a touch of that code's guide or store, which may bind the member to the
  guide under the brand's policy (``guides``). An unknown scene is noted on the inbox row.
- ``unsubscribe``: WeChat expects the account to delete what it holds about the user: the openid, the
  records that came through it, its behaviour events and the stored messages' contents. The member,
  their other channels, orders and points stay.
- ``LOCATION``: kept as the last known location only if the member consented to ``location``
  (PIPL 28: precise whereabouts are sensitive); otherwise the coordinates are dropped from the inbox too.
- ``CLICK`` / ``VIEW``: behaviour events.
- ``TEMPLATESENDJOBFINISH``: the delivery status of the template message with that msgid (outbox).
"""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from datong.channels.registration import Registration, register_member
from datong.channels.wechat import callback
from datong.channels.wechat.models import DONE, FAILED, PENDING, PROCESSING, WechatAccount, WechatInbox
from datong.channels.wechat.senders import TEMPLATE
from datong.channels.wechat.service import mark
from datong.core.crypto import Keyring
from datong.core.db import rowcount
from datong.core.errors import DatongError, NotFound
from datong.events.models import BehaviourEvent
from datong.guides import service as guides
from datong.jobs.models import DONE as OUTBOX_DONE
from datong.jobs.models import FAILED as OUTBOX_FAILED
from datong.jobs.models import PENDING as OUTBOX_PENDING
from datong.jobs.models import OutboxMessage
from datong.members.models import Identity
from datong.members.queries import consent_granted
from datong.members.service import forget_identity

ACTOR = "wechat"


def source_of(appid: str) -> str:
    return f"wechat:{appid}"


def process_message(session: Session, *, keyring: Keyring, inbox_id: str) -> str:
    """Handle one stored message; returns its new status. A message handled already is left alone."""
    # Claim the row first: a second worker (the answer's background task and the sweep) waits here
    # for the first to commit, then finds it handled and leaves it alone.
    claimed = session.execute(
        update(WechatInbox)
        .where(WechatInbox.id == inbox_id, WechatInbox.status.in_((PENDING, FAILED)))
        .values(status=PROCESSING)
    )
    row = session.get(WechatInbox, inbox_id)
    if row is None:
        raise NotFound(f"no inbox message {inbox_id}", field="inbox_id")
    if rowcount(claimed) != 1:
        return row.status
    account = session.scalar(select(WechatAccount).where(WechatAccount.appid == row.appid))
    assert account is not None
    message = callback.message_from_fields(row.message)
    event = message.event if message.msg_type == "event" else None
    note: str | None = None
    member_id: str | None = None
    if event in (callback.SUBSCRIBE, callback.SCAN):
        member_id, note = _follow(session, keyring, account, row, message)
    elif event == callback.UNSUBSCRIBE:
        member_id = _forget(session, account, row, message.from_user)
    elif event == callback.LOCATION:
        member_id = _location(session, account, row, message)
    elif event in (callback.CLICK, callback.VIEW):
        member_id = _behaviour(session, account, message, event)
    elif event == callback.TEMPLATE_SEND_JOB_FINISH:
        _delivery(session, account, message)
    mark(session, inbox_id=row.id, status=DONE, error=note, member_id=member_id)
    return DONE


def _member_of(session: Session, keyring: Keyring, account: WechatAccount, openid: str) -> str:
    member_id, _new = register_member(
        session,
        tenant_id=account.tenant_id,
        keyring=keyring,
        actor=ACTOR,
        registration=Registration(source=source_of(account.appid), openid=openid, appid=account.appid),
    )
    return member_id


def _follow(
    session: Session, keyring: Keyring, account: WechatAccount, row: WechatInbox, message: callback.Message
) -> tuple[str, str | None]:
    member_id = _member_of(session, keyring, account, message.from_user)
    if not message.scene:
        return member_id, None
    kind = "subscribe" if message.event == callback.SUBSCRIBE else "scan"
    try:
        guides.record_scan(
            session,
            tenant_id=account.tenant_id,
            member_id=member_id,
            scene=message.scene,
            at=message.created_at,
            kind=kind,
            source_ref=row.dedupe_key,
            actor=ACTOR,
        )
    except DatongError as exc:  # an unknown or foreign scene: the follow still counts
        return member_id, f"scene {message.scene!r}: {exc}"
    return member_id, None


def _member_by_openid(session: Session, account: WechatAccount, openid: str) -> str | None:
    return session.scalar(
        select(Identity.member_id).where(
            Identity.tenant_id == account.tenant_id,
            Identity.kind == "openid",
            Identity.namespace == account.appid,
            Identity.lookup == openid,
        )
    )


def _forget(session: Session, account: WechatAccount, row: WechatInbox, openid: str) -> str | None:
    via = f"openid:{account.appid}"
    member_id = forget_identity(
        session,
        tenant_id=account.tenant_id,
        kind="openid",
        namespace=account.appid,
        lookup=openid,
        source=source_of(account.appid),
        actor=ACTOR,
    )
    if member_id is not None:
        session.execute(
            delete(BehaviourEvent).where(
                BehaviourEvent.tenant_id == account.tenant_id,
                BehaviourEvent.member_id == member_id,
                BehaviourEvent.via == via,
            )
        )
    # Template messages not sent yet are not sent to someone who left; sent ones forget the address.
    session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.tenant_id == account.tenant_id,
            OutboxMessage.kind == TEMPLATE,
            OutboxMessage.status == OUTBOX_PENDING,
            OutboxMessage.payload["touser"].as_string() == openid,
        )
        .values(status=OUTBOX_FAILED, last_error="the member unfollowed the account", payload={})
    )
    # The stored messages of that user up to this one keep only what proves they were handled (the
    # dedupe key, so a retry still changes nothing); one not handled yet is moot now.
    session.execute(
        update(WechatInbox)
        .where(
            WechatInbox.tenant_id == account.tenant_id,
            WechatInbox.appid == account.appid,
            WechatInbox.openid == openid,
            WechatInbox.received_at <= row.received_at,
        )
        .values(message={}, openid=None, member_id=None, status=DONE)
    )
    return None


def _location(
    session: Session, account: WechatAccount, row: WechatInbox, message: callback.Message
) -> str | None:
    member_id = _member_by_openid(session, account, message.from_user)
    if member_id is None or not consent_granted(
        session, tenant_id=account.tenant_id, member_id=member_id, purpose="location"
    ):
        coarse = {k: v for k, v in row.message.items() if k not in ("Latitude", "Longitude", "Precision")}
        row.message = coarse
        return member_id
    session.add(
        BehaviourEvent(
            tenant_id=account.tenant_id,
            member_id=member_id,
            kind="location",
            channel="wechat",
            via=f"openid:{account.appid}",
            at=message.created_at,
            detail={
                "latitude": message.latitude,
                "longitude": message.longitude,
                "precision": message.precision,
            },
        )
    )
    return member_id


def _behaviour(session: Session, account: WechatAccount, message: callback.Message, event: str) -> str | None:
    member_id = _member_by_openid(session, account, message.from_user)
    if member_id is None:
        return None
    session.add(
        BehaviourEvent(
            tenant_id=account.tenant_id,
            member_id=member_id,
            kind=event,
            channel="wechat",
            via=f"openid:{account.appid}",
            at=message.created_at,
            detail={"key": message.event_key, "menu_id": message.menu_id},
        )
    )
    return member_id


def _delivery(session: Session, account: WechatAccount, message: callback.Message) -> None:
    if message.msg_id is None:
        return
    outbox = session.scalar(
        select(OutboxMessage).where(
            OutboxMessage.tenant_id == account.tenant_id,
            OutboxMessage.kind == "wechat.template",
            OutboxMessage.external_id == message.msg_id,
        )
    )
    if outbox is None:
        return
    delivered = (message.status or "").strip() == "success"
    outbox.result = {**(outbox.result or {}), "delivery": message.status}
    if delivered:
        outbox.status = OUTBOX_DONE
    else:
        outbox.status = OUTBOX_FAILED
        outbox.last_error = f"delivery: {message.status}"
