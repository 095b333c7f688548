"""Spend-reward claims: a member asks for the reward of a purchase datong did not see at the POS.

* By order number (channel + order number): a rule checks it against the orders at once. The order
  exists, is this member's, is paid, shipped or completed → rewarded by its band, or ``no_reward`` when
  under every band. An order not imported yet (or not yet paid, or not yet linked to a member) keeps the
  claim ``pending``, checked again by :func:`recheck_claims` (``datong spend-claims recheck``) until
  ``ORDER_WAIT`` has passed, when it is rejected with the same reason. An order of another member,
  closed or refunded, or rewarded already by any path, is rejected at once.
* By receipt photo (JPEG or PNG, by its first bytes, at most 5 MB; the same photo is taken once per
  brand): ``pending`` until staff look at it, then approved with the store, the receipt number and the
  amount read off the receipt (rewarded once per store and receipt number, and not at all when the POS
  sale with that number at that store was rewarded already), or rejected with a reason. Both are
  audited.

The bands and the once-per-purchase rule are in ``spend_rewards.py``.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from datong.core.crypto import Keyring
from datong.core.db import hold_named_lock
from datong.core.errors import Conflict, DatongError, NotFound, ValidationFailed
from datong.core.ids import new_id
from datong.coupons.models import SpendClaim
from datong.coupons.rules import OFFLINE_CHANNELS, ONLINE_CHANNELS
from datong.coupons.spend_rewards import (
    POS,
    REWARDED_STATUSES,
    UNDONE_STATUSES,
    earlier_reward,
    hold_purchase,
    normalize_receipt_no,
    purchase_keys,
    receipt_issue_key,
    reward_purchase,
    sale_receipt,
)
from datong.members.service import get_active_member
from datong.orders.models import Order
from datong.tenancy.service import audit

PENDING, REWARDED, NO_REWARD, REJECTED = "pending", "rewarded", "no_reward", "rejected"
STATUSES = (PENDING, REWARDED, NO_REWARD, REJECTED)
BY_ORDER, BY_RECEIPT = "order_no", "receipt"
CLAIM_CHANNELS = tuple(sorted(ONLINE_CHANNELS | OFFLINE_CHANNELS))
# Order reports are imported daily or weekly: a week covers a late import without leaving members to
# wait for ever on an order number that will never come.
ORDER_WAIT = timedelta(days=7)
MAX_PHOTO_BYTES = 5 * 1024 * 1024
PHOTO_TYPES = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"))
RULE = "system:spend-rule"  # who decided a claim checked by its rule


# --- submitting ---------------------------------------------------------------------------------------


_TABLE = "spend_claim"


def submit_order_claim(
    session: Session, *, tenant_id: str, member_id: str, channel: str, order_no: str, at: datetime
) -> SpendClaim:
    """A member's claim by order number, checked at once (see the module's docstring)."""
    get_active_member(session, tenant_id=tenant_id, member_id=member_id)
    if channel not in CLAIM_CHANNELS:
        raise ValidationFailed(f"channel must be one of {', '.join(CLAIM_CHANNELS)}", field="channel")
    order_no = order_no.strip()
    if not 1 <= len(order_no) <= 64:
        raise ValidationFailed("an order number has 1 to 64 characters", field="order_no")
    waiting = session.scalar(
        select(SpendClaim.id).where(
            SpendClaim.tenant_id == tenant_id,
            SpendClaim.member_id == member_id,
            SpendClaim.kind == BY_ORDER,
            SpendClaim.channel == channel,
            SpendClaim.order_no == order_no,
            SpendClaim.status == PENDING,
        )
    )
    if waiting is not None:
        raise Conflict("this order was claimed already and waits for its check", field="order_no")
    claim = SpendClaim(
        id=new_id("scl"),
        tenant_id=tenant_id,
        member_id=member_id,
        kind=BY_ORDER,
        channel=channel,
        order_no=order_no,
        status=PENDING,
        created_at=at,
    )
    session.add(claim)
    session.flush()
    _check_order(session, claim, at=at)
    return claim


def photo_type(photo: bytes) -> str:
    """The photo's media type, read off its first bytes (what the sender says it is is not trusted)."""
    if not photo:
        raise ValidationFailed("the photo is empty", field="photo")
    if len(photo) > MAX_PHOTO_BYTES:
        raise ValidationFailed(f"a photo is at most {MAX_PHOTO_BYTES // (1024 * 1024)} MB", field="photo")
    for magic, media_type in PHOTO_TYPES:
        if photo.startswith(magic):
            return media_type
    raise ValidationFailed("a receipt photo is a JPEG or a PNG", field="photo")


def submit_receipt_claim(
    session: Session,
    *,
    tenant_id: str,
    keyring: Keyring,
    member_id: str,
    photo: bytes,
    store_id: str | None,
    at: datetime,
) -> SpendClaim:
    """A member's claim by receipt photo, ``store_id`` the store the member says it is from (it puts the
    photo before that store's staff). Pending until staff review it. The photo is kept encrypted (a
    receipt may show a name or a card number): :func:`receipt_photo` opens it."""
    get_active_member(session, tenant_id=tenant_id, member_id=member_id)
    media_type = photo_type(photo)
    digest = hashlib.sha256(photo).hexdigest()
    hold_named_lock(session, f"spend-photo|{tenant_id}|{digest}")  # two uploads of one photo take turns
    sent = session.scalar(
        select(SpendClaim.id).where(SpendClaim.tenant_id == tenant_id, SpendClaim.photo_sha256 == digest)
    )
    if sent is not None:
        raise Conflict("this photo was sent already", field="photo")
    claim = SpendClaim(
        id=new_id("scl"),
        tenant_id=tenant_id,
        member_id=member_id,
        kind=BY_RECEIPT,
        store_id=store_id,
        photo_type=media_type,
        photo_sha256=digest,
        status=PENDING,
        created_at=at,
    )
    claim.photo = keyring.encrypt(
        base64.b64encode(photo).decode("ascii"),
        tenant_id=tenant_id,
        table=_TABLE,
        row_id=claim.id,
        column="photo",
    )
    session.add(claim)
    session.flush()
    return claim


def receipt_photo(keyring: Keyring, claim: SpendClaim) -> bytes | None:
    """The photo as the member sent it (None for a claim by order number)."""
    if claim.photo is None:
        return None
    text = keyring.decrypt(
        claim.photo, tenant_id=claim.tenant_id, table=_TABLE, row_id=claim.id, column="photo"
    )
    return base64.b64decode(text)


# --- the rule for order numbers -----------------------------------------------------------------------


def _check_order(session: Session, claim: SpendClaim, *, at: datetime) -> None:
    assert claim.channel is not None and claim.order_no is not None
    order = session.scalar(
        select(Order).where(
            Order.tenant_id == claim.tenant_id,
            Order.channel == claim.channel,
            Order.order_no == claim.order_no,
        )
    )
    if order is None:
        return _wait_or_reject(claim, "order not found", at)
    claim.order_id = order.id
    if order.member_id is None:
        return _wait_or_reject(claim, "order not linked to a member", at)
    if order.member_id != claim.member_id:
        return _decide(claim, REJECTED, "belongs to another member", at)
    if order.status in UNDONE_STATUSES:
        return _decide(claim, REJECTED, f"order {order.status}", at)
    if order.status not in REWARDED_STATUSES:
        return _wait_or_reject(claim, "order not paid", at)
    issue_keys = purchase_keys(order)  # a POS sale's receipt too: a photo of it may have been approved
    hold_purchase(session, tenant_id=claim.tenant_id, issue_keys=issue_keys)
    if earlier_reward(session, tenant_id=claim.tenant_id, issue_keys=issue_keys) is not None:
        return _decide(claim, REJECTED, "already rewarded", at)
    same = SpendClaim.order_id == order.id
    receipt = sale_receipt(order)
    if receipt is not None:
        store_id, number = receipt
        same = or_(same, and_(SpendClaim.store_id == store_id, SpendClaim.receipt_no == number))
    decided = session.scalar(
        select(SpendClaim.id).where(
            SpendClaim.tenant_id == claim.tenant_id,
            same,
            SpendClaim.status.in_((REWARDED, NO_REWARD)),
            SpendClaim.id != claim.id,
        )
    )
    if decided is not None:
        return _decide(claim, REJECTED, "already claimed", at)
    claim.amount_fen = order.paid_fen
    try:
        with session.begin_nested():
            coupon, _created = reward_purchase(
                session,
                tenant_id=claim.tenant_id,
                member_id=claim.member_id,
                amount_fen=order.paid_fen,
                issue_keys=issue_keys,
                at=at,
            )
    except DatongError as exc:  # the band's template spent or switched off: the member is told why
        return _decide(claim, REJECTED, f"no reward could be given: {exc.message}"[:300], at)
    if coupon is None:
        return _decide(claim, NO_REWARD, "under every band", at)
    claim.coupon_id = coupon.id
    return _decide(claim, REWARDED, None, at)


def _wait_or_reject(claim: SpendClaim, reason: str, at: datetime) -> None:
    """Not decidable yet: pending with the reason, until the wait is over."""
    if at - claim.created_at >= ORDER_WAIT:
        return _decide(claim, REJECTED, reason, at)
    claim.reason = reason
    return None


def _decide(claim: SpendClaim, status: str, reason: str | None, at: datetime, by: str = RULE) -> None:
    claim.status = status
    claim.reason = reason
    claim.reviewed_by = by
    claim.reviewed_at = at


@dataclass
class Recheck:
    """What one batch of :func:`recheck_claims` did; ``last_id`` is where the next batch starts."""

    checked: int = 0
    rewarded: int = 0
    no_reward: int = 0
    rejected: int = 0
    pending: int = 0
    last_id: str | None = None


def recheck_claims(
    session: Session, *, tenant_id: str, at: datetime, after_id: str | None = None, limit: int = 200
) -> Recheck:
    """Check pending order-number claims again (after an import of orders, or daily), in id order from
    ``after_id``; each claim moves on (rewarded, no reward, rejected) or stays pending with its reason."""
    query = select(SpendClaim).where(
        SpendClaim.tenant_id == tenant_id, SpendClaim.kind == BY_ORDER, SpendClaim.status == PENDING
    )
    if after_id is not None:
        query = query.where(SpendClaim.id > after_id)
    done = Recheck(last_id=after_id)
    rows = session.scalars(query.order_by(SpendClaim.id).limit(limit).with_for_update(skip_locked=True))
    for claim in rows:
        _check_order(session, claim, at=at)
        done.checked += 1
        setattr(done, claim.status, getattr(done, claim.status) + 1)
        done.last_id = claim.id
    session.flush()
    return done


# --- staff review of receipts -------------------------------------------------------------------------


def approve_receipt(
    session: Session,
    *,
    tenant_id: str,
    claim_id: str,
    store_id: str,
    receipt_no: str,
    amount_fen: int,
    actor: str,
    at: datetime,
) -> SpendClaim:
    """Staff read the receipt: its store, number and amount. Rewarded by band, once per store and
    receipt number: a receipt rewarded already is a conflict, and the claim stays pending for a
    correction or a rejection. When datong has the POS sale with that number at that store, the
    receipt is that sale: rewarded under the sale's key, and a conflict when the sale was rewarded
    already, refunded or closed, or is another member's. A reward that cannot be issued is a conflict
    too. A conflict changes nothing."""
    claim = _pending(session, tenant_id, claim_id)
    if claim.kind != BY_RECEIPT:
        raise Conflict("an order-number claim is checked by its rule, not approved", field="claim_id")
    number = normalize_receipt_no(receipt_no)
    if not 0 < amount_fen <= 100_000_000:
        raise ValidationFailed("the receipt's amount is 1 fen to 1,000,000 yuan", field="amount_fen")
    # The receipt's key is the purchase's lock whether or not the sale is here (``hold_purchase``), so
    # a sale arriving from the till at this moment waits, and is then seen.
    hold_purchase(session, tenant_id=tenant_id, issue_keys=[receipt_issue_key(store_id, number)])
    sale = _sale_of_receipt(session, tenant_id, store_id, number, receipt_no)
    issue_keys = purchase_keys(sale) if sale else (receipt_issue_key(store_id, number),)
    if sale is not None and sale.status in UNDONE_STATUSES:
        raise Conflict(f"the sale on this receipt was {sale.status}", field="receipt_no", order_id=sale.id)
    if sale is not None and sale.member_id not in (None, claim.member_id):
        raise Conflict("the sale on this receipt is another member's", field="receipt_no", order_id=sale.id)
    same = and_(SpendClaim.store_id == store_id, SpendClaim.receipt_no == number)
    decided = session.scalar(
        select(SpendClaim.id).where(
            SpendClaim.tenant_id == tenant_id,
            or_(same, SpendClaim.order_id == sale.id) if sale else same,
            SpendClaim.status.in_((REWARDED, NO_REWARD)),
        )
    )
    if decided is not None or earlier_reward(session, tenant_id=tenant_id, issue_keys=issue_keys):
        raise Conflict("this receipt was rewarded already", field="receipt_no", claim_id=decided)
    coupon, _created = reward_purchase(
        session,
        tenant_id=tenant_id,
        member_id=claim.member_id,
        amount_fen=amount_fen,
        issue_keys=issue_keys,
        at=at,
    )
    claim.store_id, claim.receipt_no, claim.amount_fen = store_id, number, amount_fen
    claim.order_id = sale.id if sale else None
    claim.coupon_id = coupon.id if coupon else None
    _decide(claim, REWARDED if coupon else NO_REWARD, None if coupon else "under every band", at, actor)
    _audit(session, claim, actor, "spend_claim.approve")
    return claim


def _sale_of_receipt(
    session: Session, tenant_id: str, store_id: str, number: str, typed: str
) -> Order | None:
    """The POS sale a receipt is of: the till's order number at that store, as kept or as typed."""
    return session.scalar(
        select(Order).where(
            Order.tenant_id == tenant_id,
            Order.channel == POS,
            Order.store_id == store_id,
            Order.order_no.in_(sorted({number, typed.strip()})),
        )
    )


def reject_claim(
    session: Session, *, tenant_id: str, claim_id: str, reason: str, actor: str, at: datetime
) -> SpendClaim:
    """Staff turn a pending claim down, saying why (the member sees the reason)."""
    claim = _pending(session, tenant_id, claim_id)
    reason = reason.strip()
    if not 1 <= len(reason) <= 300:
        raise ValidationFailed("say why, in 1 to 300 characters", field="reason")
    _decide(claim, REJECTED, reason, at, actor)
    _audit(session, claim, actor, "spend_claim.reject")
    return claim


def _pending(session: Session, tenant_id: str, claim_id: str) -> SpendClaim:
    claim = session.scalar(
        select(SpendClaim)
        .where(SpendClaim.tenant_id == tenant_id, SpendClaim.id == claim_id)
        .with_for_update()  # one review at a time, and none while the rule rechecks it
    )
    if claim is None:
        raise NotFound(f"no spend claim {claim_id}", field="claim_id")
    if claim.status != PENDING:
        raise Conflict(f"this claim is {claim.status}, not pending", field="claim_id", status=claim.status)
    return claim


def _audit(session: Session, claim: SpendClaim, actor: str, action: str) -> None:
    detail: dict[str, Any] = {"status": claim.status, "kind": claim.kind, "reason": claim.reason}
    if claim.kind == BY_RECEIPT:
        detail |= {"store_id": claim.store_id, "receipt_no": claim.receipt_no, "amount_fen": claim.amount_fen}
    if claim.coupon_id:
        detail["coupon_id"] = claim.coupon_id
    audit(
        session,
        tenant_id=claim.tenant_id,
        actor=actor,
        action=action,
        object_type="spend_claim",
        object_id=claim.id,
        detail=detail,
    )
