"""Profit-sharing (分账) request rules, checked before anything is sent (pure: no I/O).

Limits from WeChat Pay's documentation (see docs/wechat-api.md): at most 50 receivers per request (and
50 requests per order, which only WeChat Pay can count); ``out_order_no`` / ``out_return_no`` 1..64 of
``[0-9A-Za-z_-|*@]``; amounts in integer fen; descriptions at most 80 (counted in characters —
unconfirmed whether WeChat Pay counts bytes); returns only from merchant receivers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from datong.core.errors import ValidationFailed

MAX_RECEIVERS = 50
MAX_DESCRIPTION = 80
MAX_CUSTOM_RELATION = 10
MAX_ACCOUNT = 64
MERCHANT_ID = "MERCHANT_ID"
PERSONAL_OPENID = "PERSONAL_OPENID"
# PERSONAL_SUB_OPENID (a sub-merchant app's openid, service-provider mode) needs sub_appid: not supported.
RECEIVER_TYPES = (MERCHANT_ID, PERSONAL_OPENID)
RELATION_TYPES = (
    "SERVICE_PROVIDER",
    "STORE",
    "STAFF",
    "STORE_OWNER",
    "PARTNER",
    "HEADQUARTER",
    "BRAND",
    "DISTRIBUTOR",
    "USER",
    "SUPPLIER",
    "CUSTOM",
)
_OUT_NO = re.compile(r"[0-9A-Za-z_\-|*@]{1,64}")
_TRANSACTION_ID = re.compile(r"[0-9A-Za-z]{1,32}")
_MCHID = re.compile(r"[0-9]{1,32}")


@dataclass(frozen=True)
class SplitReceiver:
    """One line of a split. ``name`` (personal receivers only, optional) is the person's real name,
    which WeChat Pay checks; it is sent encrypted."""

    type: str
    account: str
    amount_fen: int
    description: str
    name: str | None = None


def check_out_no(value: object, field: str) -> str:
    if not isinstance(value, str) or not _OUT_NO.fullmatch(value):
        raise ValidationFailed(f"{field} must be 1 to 64 of 0-9 A-Z a-z _ - | * @", field=field)
    return value


def check_transaction_id(value: object) -> str:
    if not isinstance(value, str) or not _TRANSACTION_ID.fullmatch(value):
        raise ValidationFailed("transaction_id must be 1 to 32 letters or digits", field="transaction_id")
    return value


def check_mchid(value: object, field: str) -> str:
    if not isinstance(value, str) or not _MCHID.fullmatch(value):
        raise ValidationFailed(f"{field} must be a merchant id: 1 to 32 digits", field=field)
    return value


def check_amount(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationFailed(f"{field} must be a whole number of fen, at least 1", field=field)
    return value


def check_description(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_DESCRIPTION:
        raise ValidationFailed(f"{field} must be 1 to {MAX_DESCRIPTION} characters", field=field)
    return value


def _check_account(kind: object, account: object, type_field: str, account_field: str) -> None:
    if kind not in RECEIVER_TYPES:
        raise ValidationFailed(f"{type_field} must be one of {', '.join(RECEIVER_TYPES)}", field=type_field)
    if kind == MERCHANT_ID:
        check_mchid(account, account_field)
    elif not isinstance(account, str) or not 1 <= len(account) <= MAX_ACCOUNT or account.strip() != account:
        raise ValidationFailed(
            f"{account_field} must be an openid of 1 to {MAX_ACCOUNT} characters", field=account_field
        )


def split_body(
    *,
    transaction_id: str,
    out_order_no: str,
    receivers: Sequence[SplitReceiver],
    unfreeze_unsplit: bool,
    appid: str,
    encrypt: Callable[[str], str],
) -> tuple[dict[str, Any], bool]:
    """The ``POST /v3/profitsharing/orders`` body (without ``sub_mchid``) and whether it holds an
    encrypted field. Raises ValidationFailed naming the first bad field; ``encrypt`` runs only after
    every check has passed."""
    check_transaction_id(transaction_id)
    check_out_no(out_order_no, "out_order_no")
    if not isinstance(unfreeze_unsplit, bool):
        raise ValidationFailed("unfreeze_unsplit must be true or false", field="unfreeze_unsplit")
    if not 1 <= len(receivers) <= MAX_RECEIVERS:
        raise ValidationFailed(
            f"a split has 1 to {MAX_RECEIVERS} receivers, got {len(receivers)}", field="receivers"
        )
    seen: set[tuple[str, str]] = set()
    for index, receiver in enumerate(receivers):
        where = f"receivers[{index}]."
        _check_account(receiver.type, receiver.account, f"{where}type", f"{where}account")
        if (receiver.type, receiver.account) in seen:
            raise ValidationFailed(
                "the same receiver appears twice in one split; give it one line with the total",
                field=f"{where}account",
            )
        seen.add((receiver.type, receiver.account))
        check_amount(receiver.amount_fen, f"{where}amount_fen")
        check_description(receiver.description, f"{where}description")
        if receiver.name is not None:
            if receiver.type != PERSONAL_OPENID:
                raise ValidationFailed("only a personal receiver carries a name", field=f"{where}name")
            if not isinstance(receiver.name, str) or not receiver.name.strip():
                raise ValidationFailed("name must be the receiver's real name", field=f"{where}name")
    lines: list[dict[str, Any]] = []
    for receiver in receivers:
        line: dict[str, Any] = {"type": receiver.type, "account": receiver.account}
        if receiver.name is not None:
            line["name"] = encrypt(receiver.name)
        line |= {"amount": receiver.amount_fen, "description": receiver.description}
        lines.append(line)
    body: dict[str, Any] = {"appid": appid, "transaction_id": transaction_id, "out_order_no": out_order_no}
    body |= {"receivers": lines, "unfreeze_unsplit": unfreeze_unsplit}
    return body, any(receiver.name is not None for receiver in receivers)


def receiver_body(
    *,
    receiver_type: str,
    account: str,
    relation_type: str,
    name: str | None,
    custom_relation: str | None,
    appid: str,
    encrypt: Callable[[str], str],
) -> dict[str, Any]:
    """The ``POST /v3/profitsharing/receivers/add`` body (without ``sub_mchid``). A merchant receiver
    needs its full registered name; a person's name is optional (WeChat Pay checks it when given)."""
    _check_account(receiver_type, account, "receiver_type", "account")
    if relation_type not in RELATION_TYPES:
        raise ValidationFailed(
            f"relation_type must be one of {', '.join(RELATION_TYPES)}", field="relation_type"
        )
    if relation_type == "CUSTOM":
        if (
            not isinstance(custom_relation, str)
            or not 1 <= len(custom_relation.strip()) <= MAX_CUSTOM_RELATION
        ):
            raise ValidationFailed(
                f"a CUSTOM relation needs custom_relation of 1 to {MAX_CUSTOM_RELATION} characters",
                field="custom_relation",
            )
    elif custom_relation is not None:
        raise ValidationFailed("custom_relation goes only with relation_type CUSTOM", field="custom_relation")
    if receiver_type == MERCHANT_ID and (not isinstance(name, str) or not name.strip()):
        raise ValidationFailed("a merchant receiver needs the merchant's full registered name", field="name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise ValidationFailed("name must be the receiver's real name", field="name")
    body: dict[str, Any] = {"appid": appid, "type": receiver_type, "account": account}
    if name is not None:
        body["name"] = encrypt(name)
    body["relation_type"] = relation_type
    if custom_relation is not None:
        body["custom_relation"] = custom_relation
    return body


def return_body(
    *, out_order_no: str, out_return_no: str, return_mchid: str, amount_fen: int, description: str
) -> dict[str, Any]:
    """The ``POST /v3/profitsharing/return-orders`` body (without ``sub_mchid``). Only a merchant
    receiver can give money back, so ``return_mchid`` is a merchant id."""
    return {
        "out_order_no": check_out_no(out_order_no, "out_order_no"),
        "out_return_no": check_out_no(out_return_no, "out_return_no"),
        "return_mchid": check_mchid(return_mchid, "return_mchid"),
        "amount": check_amount(amount_fen, "amount_fen"),
        "description": check_description(description, "description"),
    }
