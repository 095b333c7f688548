"""Split settlement through WeChat Pay profit sharing: the requests for an order (``split_rules.py``
says who receives what), sent through the outbox, their results, and returns (回退) from merchant
receivers. ``out_order_no`` and ``out_return_no`` are datong's ids at WeChat Pay: sending one again is
the same request, so the outbox may retry after a timeout without paying anyone twice."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from datong.channels.wechatpay.errors import WeChatPayError, WeChatPayNotFound
from datong.channels.wechatpay.profit_sharing import (
    ProfitSharingClient,
    ReceiverResult,
    Split,
    SplitReceiver,
    SplitState,
)
from datong.core.clock import utcnow
from datong.core.db import is_sqlite
from datong.core.errors import Conflict, NotFound, ValidationFailed
from datong.core.ids import new_id
from datong.guides.commissions import owed_on_order, record_payout
from datong.guides.models import Attribution, ProfitShare, ProfitShareReturn
from datong.guides.split_rules import MERCHANT_ID, batches, parse_split_plan, split_lines
from datong.jobs.models import PENDING as OUTBOX_PENDING
from datong.jobs.models import OutboxMessage
from datong.jobs.outbox import MAX_ATTEMPTS, Outcome, enqueue
from datong.orders.models import Order
from datong.org.models import Agent, Guide, Store
from datong.tenancy.models import Tenant
from datong.tenancy.service import audit

SPLIT, RETURN = "wechatpay.profit_sharing", "wechatpay.profit_sharing_return"
# Only a completed order is split: the guide's commission is posted then, and the last request
# releases what is left, so a split made earlier could never pay the guide.
SPLIT_STATUSES = ("completed",)


def request_profit_sharing(
    session: Session, *, tenant_id: str, order_id: str, transaction_id: str, actor: str
) -> list[ProfitShare]:
    """The profit-sharing requests for a paid order, written once (asking again returns them) and put
    in the outbox. None when nobody but HQ receives anything."""
    order = session.get(Order, order_id)
    if order is None or order.tenant_id != tenant_id:
        raise NotFound(f"no order {order_id}", field="order_id")
    if order.status not in SPLIT_STATUSES:
        raise Conflict(f"the order is {order.status}: only a completed order is split", field="order_id")
    if not transaction_id.isalnum() or len(transaction_id) > 32:
        raise ValidationFailed("transaction_id is WeChat Pay's id of the payment", field="transaction_id")
    other = session.scalar(
        select(ProfitShare.order_id).where(
            ProfitShare.tenant_id == tenant_id,
            ProfitShare.transaction_id == transaction_id,
            ProfitShare.order_id != order_id,
        )
    )
    if other is not None:
        raise Conflict("this payment is split for another order already", field="transaction_id")
    earlier = list(
        session.scalars(
            select(ProfitShare)
            .where(ProfitShare.tenant_id == tenant_id, ProfitShare.order_id == order_id)
            .order_by(ProfitShare.out_order_no)
        )
    )
    if earlier:
        return earlier
    tenant = session.get(Tenant, tenant_id)
    assert tenant is not None
    plan = parse_split_plan((tenant.settings or {}).get("profit_sharing"))
    attribution = session.scalar(
        select(Attribution).where(Attribution.tenant_id == tenant_id, Attribution.order_id == order_id)
    )
    store_id = (attribution.store_id if attribution else None) or order.store_id
    store = session.get(Store, store_id) if store_id else None
    agent = session.get(Agent, store.agent_id) if store and store.agent_id else None
    guide = session.get(Guide, attribution.guide_id) if attribution and attribution.guide_id else None
    lines = split_lines(
        plan,
        paid_fen=order.paid_fen,
        agent_code=agent.code if agent else None,
        franchise_store_code=store.code if store and store.kind == "franchise" and agent is None else None,
        guide_code=guide.code if guide else None,
        guide_openid=guide.wechat_openid if guide else None,
        commission_fen=owed_on_order(session, tenant_id=tenant_id, order_id=order_id),
    )
    shares = []
    parts = batches(lines)
    for number, part in enumerate(parts, start=1):
        share = ProfitShare(
            id=new_id("psh"),
            tenant_id=tenant_id,
            order_id=order.id,
            transaction_id=transaction_id,
            out_order_no=f"ps-{order.id}-{number}",
            receivers=[{**line.__dict__} for line in part],
            status="pending",
            results=[],
        )
        session.add(share)
        session.flush()
        # The last request releases what is left to the merchant: no further split for this order.
        enqueue(
            session,
            tenant_id=tenant_id,
            kind=SPLIT,
            key=share.out_order_no,
            payload={"profit_share_id": share.id, "unfreeze_unsplit": number == len(parts)},
        )
        shares.append(share)
    if shares:
        audit(
            session,
            tenant_id=tenant_id,
            actor=actor,
            action="guides.profit_sharing",
            object_type="sales_order",
            object_id=order.id,
            detail={
                "requests": [s.out_order_no for s in shares],
                "fen": sum(line.amount_fen for line in lines),
            },
        )
    return shares


def _apply(session: Session, share: ProfitShare, split: Split, at: datetime) -> None:
    share.results = [
        {
            "account": r.account,
            "amount_fen": r.amount_fen,
            "result": str(r.result),
            "fail_reason": r.fail_reason,
        }
        for r in split.receivers
    ]
    share.status = "finished" if split.state == SplitState.FINISHED else "processing"
    share.finished_at = at if share.status == "finished" else None
    paid = {(r.account, r.amount_fen) for r in split.receivers if r.result == ReceiverResult.SUCCESS}
    for line in share.receivers:
        # A guide paid by WeChat Pay is paid: the commission statement stops showing it as due.
        if not line["party"].startswith("guide:") or (line["account"], line["amount_fen"]) not in paid:
            continue
        guide = session.scalar(
            select(Guide).where(Guide.tenant_id == share.tenant_id, Guide.code == line["party"][6:])
        )
        if guide is not None:
            record_payout(
                session,
                tenant_id=share.tenant_id,
                guide_id=guide.id,
                order_id=share.order_id,
                amount_fen=line["amount_fen"],
                reference=f"{share.out_order_no}:{line['account']}",
                actor="wechatpay",
                at=at,
            )


class SplitSender:
    """The outbox's sender for profit-sharing requests and returns."""

    def __init__(self, client: ProfitSharingClient) -> None:
        self.client = client

    def __call__(self, session: Session, message: OutboxMessage) -> Outcome:
        try:
            if message.kind == SPLIT:
                return self._split(session, message)
            return self._return(session, message)
        except WeChatPayError as exc:
            if exc.retryable and message.attempts + 1 < MAX_ATTEMPTS:
                return Outcome("retry", error=str(exc))
            # Out of tries after a timeout, the request may still have reached WeChat Pay: "unknown"
            # until refresh_profit_share asks; a refusal is plainly failed.
            self._failed(session, message, str(exc), unknown=exc.retryable)
            return Outcome("failed", error=str(exc))

    def _split(self, session: Session, message: OutboxMessage) -> Outcome:
        share = session.get(ProfitShare, message.payload["profit_share_id"])
        assert share is not None
        split = self.client.request_split(
            transaction_id=share.transaction_id,
            out_order_no=share.out_order_no,
            receivers=[
                SplitReceiver(
                    type=r["type"],
                    account=r["account"],
                    amount_fen=r["amount_fen"],
                    description=r["description"],
                )
                for r in share.receivers
            ],
            unfreeze_unsplit=bool(message.payload.get("unfreeze_unsplit", True)),
        )
        _apply(session, share, split, utcnow())
        return Outcome("done" if share.status == "finished" else "sent", external_id=split.order_id)

    def _return(self, session: Session, message: OutboxMessage) -> Outcome:
        back = session.get(ProfitShareReturn, message.payload["return_id"])
        assert back is not None
        share = session.get(ProfitShare, back.profit_share_id)
        assert share is not None
        answer = self.client.request_return(
            out_order_no=share.out_order_no,
            out_return_no=back.out_return_no,
            return_mchid=back.return_mchid,
            amount_fen=back.amount_fen,
            description=back.reason,
        )
        back.status = str(answer.result).lower()
        back.fail_reason = answer.fail_reason
        return Outcome("sent" if back.status == "processing" else "done", external_id=answer.return_id)

    def _failed(self, session: Session, message: OutboxMessage, error: str, *, unknown: bool) -> None:
        status = "unknown" if unknown else "failed"
        if message.kind == SPLIT:
            share = session.get(ProfitShare, message.payload["profit_share_id"])
            if share is not None:
                share.status, share.error = status, error[:500]
        else:
            back = session.get(ProfitShareReturn, message.payload["return_id"])
            if back is not None:
                back.status, back.fail_reason = status, error[:100]


def refresh_profit_share(
    session: Session, *, client: ProfitSharingClient, profit_share_id: str
) -> ProfitShare:
    """Ask WeChat Pay how a request that was processing ended (results come asynchronously), or
    whether one whose sending timed out for good ever arrived (``unknown``: if WeChat Pay has no such
    request, it is ``failed`` and can be sent again with :func:`resend_profit_share`)."""
    share = session.get(ProfitShare, profit_share_id)
    if share is None:
        raise NotFound(f"no profit-sharing request {profit_share_id}", field="profit_share_id")
    if share.status in ("processing", "unknown"):
        try:
            split = client.query_split(transaction_id=share.transaction_id, out_order_no=share.out_order_no)
        except WeChatPayNotFound:
            if share.status == "unknown":
                share.status, share.error = "failed", "WeChat Pay never received this request"
            return share
        _apply(session, share, split, utcnow())
    return share


def request_return(
    session: Session,
    *,
    tenant_id: str,
    profit_share_id: str,
    return_mchid: str,
    amount_fen: int,
    reason: str,
    actor: str,
) -> ProfitShareReturn:
    """Take money back from a merchant receiver of a finished split (e.g. the order was refunded).
    Personal receivers (a guide's openid) cannot be asked: their clawback stays in the commission ledger."""
    share = session.get(ProfitShare, profit_share_id)
    if share is None or share.tenant_id != tenant_id:
        raise NotFound(f"no profit-sharing request {profit_share_id}", field="profit_share_id")
    if not is_sqlite(session):  # two returns at once must not take back more than was paid
        session.execute(select(ProfitShare.id).where(ProfitShare.id == share.id).with_for_update())
    line = next((r for r in share.receivers if r["account"] == return_mchid), None)
    if line is None or line["type"] != MERCHANT_ID:
        raise ValidationFailed("a return comes from a merchant receiver of this split", field="return_mchid")
    result = next((r for r in share.results if r["account"] == return_mchid), None)
    if share.status != "finished" or result is None or result["result"] != "SUCCESS":
        raise Conflict(
            "only money the receiver got (a finished split, SUCCESS) can be taken back", field="return_mchid"
        )
    taken = sum(
        r.amount_fen
        for r in session.scalars(
            select(ProfitShareReturn).where(
                ProfitShareReturn.profit_share_id == share.id,
                ProfitShareReturn.return_mchid == return_mchid,
                ProfitShareReturn.status.not_in(("failed",)),
            )
        )
    )
    if not 0 < amount_fen <= line["amount_fen"] - taken:
        raise ValidationFailed(
            f"at most {line['amount_fen'] - taken} fen can still be taken back from this receiver",
            field="amount_fen",
        )
    if not reason.strip() or len(reason) > 80:
        raise ValidationFailed("a reason of 1 to 80 characters", field="reason")
    number = 1 + len(
        list(
            session.scalars(select(ProfitShareReturn.id).where(ProfitShareReturn.profit_share_id == share.id))
        )
    )
    back = ProfitShareReturn(
        id=new_id("psr"),
        tenant_id=tenant_id,
        profit_share_id=share.id,
        out_return_no=f"{share.out_order_no}-r{number}",
        return_mchid=return_mchid,
        amount_fen=amount_fen,
        reason=reason.strip(),
        status="pending",
    )
    session.add(back)
    session.flush()
    enqueue(session, tenant_id=tenant_id, kind=RETURN, key=back.out_return_no, payload={"return_id": back.id})
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="guides.profit_sharing_return",
        object_type="guide_profit_share",
        object_id=share.id,
        detail={"return_mchid": return_mchid, "amount_fen": amount_fen},
        note=reason.strip(),
    )
    return back


def resend_profit_share(session: Session, *, tenant_id: str, profit_share_id: str, actor: str) -> ProfitShare:
    """Send a failed request again (same ``out_order_no``, so WeChat Pay cannot take it twice)."""
    share = session.get(ProfitShare, profit_share_id)
    if share is None or share.tenant_id != tenant_id:
        raise NotFound(f"no profit-sharing request {profit_share_id}", field="profit_share_id")
    if share.status != "failed":
        raise Conflict(
            f"the request is {share.status}: only a failed one is sent again", field="profit_share_id"
        )
    message = session.scalar(
        select(OutboxMessage).where(
            OutboxMessage.tenant_id == tenant_id,
            OutboxMessage.kind == SPLIT,
            OutboxMessage.key == share.out_order_no,
        )
    )
    assert message is not None
    share.status, share.error = "pending", None
    message.status, message.attempts, message.next_attempt_at = OUTBOX_PENDING, 0, utcnow()
    audit(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="guides.profit_sharing_resend",
        object_type="guide_profit_share",
        object_id=share.id,
    )
    return share


def refresh_return(session: Session, *, client: ProfitSharingClient, return_id: str) -> ProfitShareReturn:
    """Ask WeChat Pay how a return that was processing ended."""
    back = session.get(ProfitShareReturn, return_id)
    if back is None:
        raise NotFound(f"no return {return_id}", field="return_id")
    if back.status == "processing":
        share = session.get(ProfitShare, back.profit_share_id)
        assert share is not None
        answer = client.query_return(out_order_no=share.out_order_no, out_return_no=back.out_return_no)
        back.status, back.fail_reason = str(answer.result).lower(), answer.fail_reason
    return back
