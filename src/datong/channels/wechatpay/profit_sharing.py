"""WeChat Pay API v3 profit sharing (分账): receivers, splits, returns (回退), the share cap.

Database-free: the caller (the outbox worker) owns the ids and the records. The same ``out_order_no``
(or ``out_return_no``) is the same request to WeChat Pay, so a resend after a timeout or a crash gets
the first request's result back, parsed to the same typed value; that makes every write safe to retry.
Splits are asynchronous: ``request_split`` usually answers PROCESSING with PENDING receivers, and
``query_split`` later tells SUCCESS or CLOSED (with ``fail_reason``) per receiver.

Direct merchants leave ``sub_mchid`` None. A service provider passes its sub-merchant's ``sub_mchid``,
which then goes into every body and query, as WeChat Pay's partner API expects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import quote

from datong.channels.wechatpay import rules
from datong.channels.wechatpay.client import WeChatPayClient
from datong.channels.wechatpay.errors import WeChatPayUnavailable
from datong.channels.wechatpay.rules import SplitReceiver
from datong.core.errors import ValidationFailed

__all__ = [
    "ProfitSharingClient",
    "Receiver",
    "ReceiverResult",
    "ReturnResult",
    "Split",
    "SplitLine",
    "SplitReceiver",
    "SplitReturn",
    "SplitState",
]


class SplitState(StrEnum):
    PROCESSING = "PROCESSING"
    FINISHED = "FINISHED"


class ReceiverResult(StrEnum):
    PENDING = "PENDING"
    SUCCESS = "SUCCESS"
    CLOSED = "CLOSED"  # see fail_reason: ACCOUNT_ABNORMAL, NO_RELATION, RECEIVER_HIGH_RISK, ...


class ReturnResult(StrEnum):
    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"  # see fail_reason: ACCOUNT_ABNORMAL, TIME_OUT_CLOSED, PAYER_ACCOUNT_ABNORMAL, ...


@dataclass(frozen=True)
class Receiver:
    type: str
    account: str
    relation_type: str
    custom_relation: str | None


@dataclass(frozen=True)
class SplitLine:
    """One receiver's part of a split, as WeChat Pay reports it."""

    type: str
    account: str
    amount_fen: int
    description: str
    result: ReceiverResult
    fail_reason: str | None
    detail_id: str | None
    create_time: datetime | None
    finish_time: datetime | None


@dataclass(frozen=True)
class Split:
    transaction_id: str
    out_order_no: str
    order_id: str
    state: SplitState
    receivers: tuple[SplitLine, ...]


@dataclass(frozen=True)
class SplitReturn:
    order_id: str
    out_order_no: str
    out_return_no: str
    return_id: str
    return_mchid: str
    amount_fen: int
    description: str
    result: ReturnResult
    fail_reason: str | None
    create_time: datetime | None
    finish_time: datetime | None


class ProfitSharingClient:
    def __init__(self, pay: WeChatPayClient, *, appid: str, sub_mchid: str | None = None) -> None:
        self._pay = pay
        self.appid = appid
        self.sub_mchid = sub_mchid

    def add_receiver(
        self,
        *,
        receiver_type: str,
        account: str,
        relation_type: str,
        name: str | None = None,
        custom_relation: str | None = None,
    ) -> Receiver:
        """Register a receiver (required before a split can pay it); repeating it is harmless."""
        body = rules.receiver_body(
            receiver_type=receiver_type,
            account=account,
            relation_type=relation_type,
            name=name,
            custom_relation=custom_relation,
            appid=self.appid,
            encrypt=self._pay.encrypt,
        )
        data = self._pay.request(
            "POST", "/v3/profitsharing/receivers/add", body=self._partner(body), encrypted="name" in body
        )
        return Receiver(
            type=_str(data, "type"),
            account=_str(data, "account"),
            relation_type=_str(data, "relation_type"),
            custom_relation=_opt_str(data, "custom_relation"),
        )

    def request_split(
        self,
        *,
        transaction_id: str,
        out_order_no: str,
        receivers: Sequence[SplitReceiver],
        unfreeze_unsplit: bool,
    ) -> Split:
        """Ask WeChat Pay to split a paid order. ``unfreeze_unsplit`` True releases what is left to the
        merchant and ends splitting for this order; False keeps it frozen for later splits."""
        body, encrypted = rules.split_body(
            transaction_id=transaction_id,
            out_order_no=out_order_no,
            receivers=receivers,
            unfreeze_unsplit=unfreeze_unsplit,
            appid=self.appid,
            encrypt=self._pay.encrypt,
        )
        data = self._pay.request(
            "POST", "/v3/profitsharing/orders", body=self._partner(body), encrypted=encrypted
        )
        return _split(data)

    def query_split(self, *, transaction_id: str, out_order_no: str) -> Split:
        rules.check_transaction_id(transaction_id)
        rules.check_out_no(out_order_no, "out_order_no")
        path = f"/v3/profitsharing/orders/{quote(out_order_no, safe='')}"
        return _split(
            self._pay.request("GET", path, params=self._partner({"transaction_id": transaction_id}))
        )

    def request_return(
        self, *, out_order_no: str, out_return_no: str, return_mchid: str, amount_fen: int, description: str
    ) -> SplitReturn:
        """Take money back from a merchant receiver of a split (before or after a refund)."""
        body = rules.return_body(
            out_order_no=out_order_no,
            out_return_no=out_return_no,
            return_mchid=return_mchid,
            amount_fen=amount_fen,
            description=description,
        )
        return _return(self._pay.request("POST", "/v3/profitsharing/return-orders", body=self._partner(body)))

    def query_return(self, *, out_order_no: str, out_return_no: str) -> SplitReturn:
        rules.check_out_no(out_order_no, "out_order_no")
        rules.check_out_no(out_return_no, "out_return_no")
        path = f"/v3/profitsharing/return-orders/{quote(out_return_no, safe='')}"
        return _return(self._pay.request("GET", path, params=self._partner({"out_order_no": out_order_no})))

    def query_unsplit_amount_fen(self, transaction_id: str) -> int:
        """What is still frozen for splitting on this order."""
        rules.check_transaction_id(transaction_id)
        data = self._pay.request("GET", f"/v3/profitsharing/transactions/{transaction_id}/amounts")
        return _int(data, "unsplit_amount")

    def query_max_ratio_bp(self, sub_mchid: str | None = None) -> int:
        """The most a sub-merchant lets its service provider share away, in basis points (2000 = 20%).
        WeChat Pay offers this query to service providers only; a direct merchant sets (and reads) its
        own cap in the merchant platform."""
        target = sub_mchid if sub_mchid is not None else self.sub_mchid
        if target is None:
            raise ValidationFailed(
                "the share cap is queried for a sub-merchant: pass sub_mchid (service-provider mode only)",
                field="sub_mchid",
            )
        rules.check_mchid(target, "sub_mchid")
        data = self._pay.request("GET", f"/v3/profitsharing/merchant-configs/{target}")
        return _int(data, "max_ratio")

    def _partner(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        return {"sub_mchid": self.sub_mchid, **fields} if self.sub_mchid is not None else dict(fields)


# --- answers -------------------------------------------------------------------------------------

_E = TypeVar("_E", bound=StrEnum)


def _unexpected(what: str) -> WeChatPayUnavailable:
    return WeChatPayUnavailable(f"WeChat Pay's answer has {what}")


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise _unexpected(f"no {key}")
    return value


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value else None


def _int(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _unexpected(f"no whole number {key}")
    return value


def _enum(kind: type[_E], data: Mapping[str, Any], key: str) -> _E:
    value = _str(data, key)
    try:
        return kind(value)
    except ValueError:
        # A value added after this code was written: retry later rather than guess what it means.
        raise _unexpected(f"{key} {value!r}, which this version does not know") from None


def _time(data: Mapping[str, Any], key: str) -> datetime | None:
    value = _opt_str(data, key)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _unexpected(f"{key} {value!r}, which is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise _unexpected(f"{key} {value!r} without a time zone")
    return moment.astimezone(UTC)


def _split(data: Mapping[str, Any]) -> Split:
    lines = data.get("receivers", [])
    if not isinstance(lines, list) or not all(isinstance(line, dict) for line in lines):
        raise _unexpected("receivers that are not a list of objects")
    return Split(
        transaction_id=_str(data, "transaction_id"),
        out_order_no=_str(data, "out_order_no"),
        order_id=_str(data, "order_id"),
        state=_enum(SplitState, data, "state"),
        receivers=tuple(
            SplitLine(
                type=_str(line, "type"),
                account=_str(line, "account"),
                amount_fen=_int(line, "amount"),
                description=_str(line, "description"),
                result=_enum(ReceiverResult, line, "result"),
                fail_reason=_opt_str(line, "fail_reason"),
                detail_id=_opt_str(line, "detail_id"),
                create_time=_time(line, "create_time"),
                finish_time=_time(line, "finish_time"),
            )
            for line in lines
        ),
    )


def _return(data: Mapping[str, Any]) -> SplitReturn:
    return SplitReturn(
        order_id=_str(data, "order_id"),
        out_order_no=_str(data, "out_order_no"),
        out_return_no=_str(data, "out_return_no"),
        return_id=_str(data, "return_id"),
        return_mchid=_str(data, "return_mchid"),
        amount_fen=_int(data, "amount"),
        description=_str(data, "description"),
        result=_enum(ReturnResult, data, "result"),
        fail_reason=_opt_str(data, "fail_reason"),
        create_time=_time(data, "create_time"),
        finish_time=_time(data, "finish_time"),
    )
