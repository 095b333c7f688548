"""A local WeChat Pay API v3 (profit sharing) behind an httpx ``MockTransport``.

It implements the protocol on its own (it does not import datong's signing code), so a mistake on
one side shows. Usage::

    clock = FakeClock()
    fake = FakeWeChatPay(clock=clock)
    fake.add_transaction("4200000000000000000000000001", amount_fen=10_000)
    pay = WeChatPayClient(fake.mchid, merchant_serial_no=fake.merchant_serial_no,
                          merchant_private_key=fake.merchant_private_key,
                          platform_keys={fake.platform_key_id: fake.platform_public_key},
                          transport=fake.transport, clock=clock)

Every request must carry a valid ``Authorization: WECHATPAY2-SHA256-RSA2048 …`` (mchid, merchant serial,
timestamp within 5 minutes of ``clock``, signature over method, raw path and query, timestamp, nonce,
body) or it gets 401 ``SIGN_ERROR``. Encrypted names need ``Wechatpay-Serial`` = ``platform_key_id``.
Every answer is signed with the platform key (headers ``Wechatpay-Timestamp/Nonce/Signature/Serial``).

Endpoints and their rules:

- ``POST /v3/profitsharing/receivers/add`` — stores the receiver (``receivers``, names decrypted).
  A MERCHANT_ID needs a name; if ``merchant_names`` knows the account, the name must match.
- ``POST /v3/profitsharing/orders`` — the same ``out_order_no`` with the same request (names compared
  decrypted) returns the stored split as it is now; with another request, 400 INVALID_REQUEST
  (unconfirmed). 1..50 receivers, amounts ≥ 1, description ≤ 80 (else PARAM_ERROR); unknown or
  non-sharing transaction, the 51st request, or past ``max_ratio_bp`` of the amount → INVALID_REQUEST;
  more than the unsplit amount → 403 NOT_ENOUGH. The split starts PROCESSING with PENDING receivers
  (unless ``finish_immediately``) and takes its amounts out of the unsplit money; ``unfreeze_unsplit``
  releases the rest. ``finish(out_order_no, failures={account: reason})`` settles it: SUCCESS, or
  CLOSED with the given reason, or CLOSED/NO_RELATION for a receiver never added (closed money goes
  back to unsplit; unconfirmed).
- ``GET /v3/profitsharing/orders/{out_order_no}?transaction_id=`` — the split, or 404.
- ``POST /v3/profitsharing/return-orders`` — only from a MERCHANT_ID receiver paid (SUCCESS) in that
  split, at most what it got in all (else INVALID_REQUEST); ``out_return_no`` repeats return the first
  result. Answers ``return_result`` (SUCCESS by default, or PROCESSING).
- ``GET /v3/profitsharing/return-orders/{out_return_no}?out_order_no=`` — the return, or 404.
- ``GET /v3/profitsharing/transactions/{id}/amounts`` (unsplit amount) and
  ``GET /v3/profitsharing/merchant-configs/{sub_mchid}`` (``max_ratio_bp``).

Ids count per kind from 1: the n-th split is ``order_id`` ``"30084507402014111100"`` + n (8 digits), its
receivers' ``detail_id`` ``"36011111111111111111"`` + m (4 digits), the n-th return ``return_id``
``"30084507402014111199"`` + n (8 digits).

Levers: ``fail_next(kind)`` — ``"connect"``, ``"http_500"`` (SYSTEM_ERROR) or ``"http_429"``;
``forge_next(kind)`` for the next answer's signature — ``"wrong_key"``, ``"tampered_body"``,
``"unsigned"``, ``"stale"``, ``"unknown_serial"``; ``calls`` records every request.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta, timezone
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.fakes.clock import FakeClock

CHINA = timezone(timedelta(hours=8))
_AUTH = re.compile(r'(\w+)="([^"]*)"')
_OUT_NO = re.compile(r"[0-9A-Za-z_\-|*@]{1,64}")


@functools.cache
def _key(purpose: str) -> rsa.RSAPrivateKey:
    """One key per purpose for the whole test session (generating RSA keys is slow)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict[str, str]
    body: Any
    headers: dict[str, str]


@dataclass
class FakeWeChatPay:
    clock: FakeClock = field(default_factory=FakeClock)
    mchid: str = "1900000100"
    merchant_serial_no: str = "5157F09EFDC096DE15EBE81A47057A72"
    platform_key_id: str = "PUB_KEY_ID_0119000001002026050100000000000001"
    max_ratio_bp: int = 3000
    finish_immediately: bool = False
    return_result: str = "SUCCESS"
    merchant_names: dict[str, str] = field(default_factory=dict)
    receivers: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    transactions: dict[str, dict[str, Any]] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    returns: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.merchant_private_key = _key("merchant")
        self.platform_public_key = _key("platform").public_key()
        self._lock = threading.RLock()
        self._faults: list[str] = []
        self._forgeries: list[str] = []
        self._requests: dict[str, dict[str, Any]] = {}  # out_order_no / out_return_no → canonical request
        self._ids: Counter[str] = Counter()
        self.transport = httpx.MockTransport(self._handle)

    # --- levers ----------------------------------------------------------------------------------

    def add_transaction(self, transaction_id: str, *, amount_fen: int, profit_sharing: bool = True) -> None:
        self.transactions[transaction_id] = {
            "amount": amount_fen,
            "unsplit": amount_fen if profit_sharing else 0,
            "profit_sharing": profit_sharing,
            "requests": 0,
            "shared": 0,
        }

    def fail_next(self, kind: str) -> None:
        assert kind in {"connect", "http_500", "http_429"}
        self._faults.append(kind)

    def forge_next(self, kind: str) -> None:
        assert kind in {"wrong_key", "tampered_body", "unsigned", "stale", "unknown_serial"}
        self._forgeries.append(kind)

    def finish(self, out_order_no: str, failures: dict[str, str] | None = None) -> None:
        with self._lock:
            order = self.orders[out_order_no]
            trade = self.transactions[order["transaction_id"]]
            for line in order["receivers"]:
                reason = (failures or {}).get(line["account"])
                if reason is None and (line["type"], line["account"]) not in self.receivers:
                    reason = "NO_RELATION"
                line["result"] = "CLOSED" if reason else "SUCCESS"
                if reason:
                    line["fail_reason"] = reason
                    trade["unsplit"] += line["amount"]
                    trade["shared"] -= line["amount"]
                line["finish_time"] = self._now()
            order["state"] = "FINISHED"

    # --- the transport ---------------------------------------------------------------------------

    def _handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        with self._lock:
            self.calls.append(
                Call(request.method, request.url.path, dict(request.url.params), body, dict(request.headers))
            )
            fault = self._faults.pop(0) if self._faults else None
            if fault == "connect":
                raise httpx.ConnectError("connection refused", request=request)
            try:
                if fault == "http_500":
                    raise _Refusal(500, "SYSTEM_ERROR", "系统错误")
                if fault == "http_429":
                    raise _Refusal(429, "FREQUENCY_LIMITED", "频率超限")
                self._authenticate(request)
                status, answer = self._route(request, body or {})
            except _Refusal as refusal:
                status, answer = refusal.status, {"code": refusal.code, "message": refusal.message}
            return self._signed(status, answer)

    def _authenticate(self, request: httpx.Request) -> None:
        header = request.headers.get("Authorization", "")
        scheme, _, rest = header.partition(" ")
        fields = dict(_AUTH.findall(rest))
        if scheme != "WECHATPAY2-SHA256-RSA2048" or fields.get("mchid") != self.mchid:
            raise _Refusal(401, "SIGN_ERROR", "签名错误: mchid or scheme")
        if fields.get("serial_no") != self.merchant_serial_no:
            raise _Refusal(401, "SIGN_ERROR", "签名错误: serial_no")
        timestamp = fields.get("timestamp", "")
        if not timestamp.isdigit() or abs(int(timestamp) - self.clock.timestamp()) > 300:
            raise _Refusal(401, "SIGN_ERROR", "签名错误: timestamp")
        url = request.url.raw_path.decode()  # path and query exactly as sent
        nonce = fields.get("nonce_str", "")
        message = f"{request.method}\n{url}\n{timestamp}\n{nonce}\n".encode() + request.content + b"\n"
        try:
            _key("merchant").public_key().verify(
                base64.b64decode(fields.get("signature", "")), message, padding.PKCS1v15(), hashes.SHA256()
            )
        except Exception as exc:  # any failure to verify is the same refusal
            raise _Refusal(401, "SIGN_ERROR", "签名错误") from exc

    def _route(self, request: httpx.Request, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        path, method, params = request.url.path, request.method, dict(request.url.params)
        base = "/v3/profitsharing/"
        if method == "POST" and path == base + "receivers/add":
            return 200, self._add_receiver(request, body)
        if method == "POST" and path == base + "orders":
            return 200, self._split(request, body)
        if method == "POST" and path == base + "return-orders":
            return 200, self._return(body)
        if method == "GET" and path.startswith(base + "orders/"):
            order = self.orders.get(path.removeprefix(base + "orders/"))
            if order is None or order["transaction_id"] != params.get("transaction_id"):
                raise _Refusal(404, "RESOURCE_NOT_EXISTS", "记录不存在")
            return 200, order
        if method == "GET" and path.startswith(base + "return-orders/"):
            found = self.returns.get(path.removeprefix(base + "return-orders/"))
            if found is None or found["out_order_no"] != params.get("out_order_no"):
                raise _Refusal(404, "RESOURCE_NOT_EXISTS", "记录不存在")
            return 200, found
        if method == "GET" and path.startswith(base + "transactions/") and path.endswith("/amounts"):
            transaction_id = path.removeprefix(base + "transactions/").removesuffix("/amounts")
            trade = self.transactions.get(transaction_id)
            if trade is None:
                raise _Refusal(404, "RESOURCE_NOT_EXISTS", "记录不存在")
            return 200, {"transaction_id": transaction_id, "unsplit_amount": trade["unsplit"]}
        if method == "GET" and path.startswith(base + "merchant-configs/"):
            return 200, {"sub_mchid": path.rsplit("/", 1)[1], "max_ratio": self.max_ratio_bp}
        raise _Refusal(404, "RESOURCE_NOT_EXISTS", "no such API")

    def _decrypt(self, request: httpx.Request, ciphertext: object) -> str:
        if request.headers.get("Wechatpay-Serial") != self.platform_key_id:
            raise _Refusal(400, "PARAM_ERROR", "Wechatpay-Serial 与加密公钥不匹配")
        oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
        try:
            return _key("platform").decrypt(base64.b64decode(str(ciphertext)), oaep).decode("utf-8")
        except Exception as exc:  # any failure to decrypt is the same refusal
            raise _Refusal(400, "PARAM_ERROR", "敏感信息解密失败") from exc

    def _add_receiver(self, request: httpx.Request, body: dict[str, Any]) -> dict[str, Any]:
        kind, account = body.get("type"), body.get("account")
        if kind not in {"MERCHANT_ID", "PERSONAL_OPENID"} or not account or not body.get("appid"):
            raise _Refusal(400, "PARAM_ERROR", "type, account and appid are required")
        if not body.get("relation_type") or (body["relation_type"] == "CUSTOM") != bool(
            body.get("custom_relation")
        ):
            raise _Refusal(400, "PARAM_ERROR", "relation_type / custom_relation")
        name = self._decrypt(request, body["name"]) if "name" in body else None
        if kind == "MERCHANT_ID" and name is None:
            raise _Refusal(400, "PARAM_ERROR", "商户接收方需要商户全称")
        if kind == "MERCHANT_ID" and account in self.merchant_names and self.merchant_names[account] != name:
            raise _Refusal(400, "INVALID_REQUEST", "分账接收方全称不匹配")
        self.receivers[(kind, account)] = {**body, "name": name}
        echoed = ("type", "account", "relation_type", "custom_relation")
        return {key: body[key] for key in echoed if key in body}

    def _split(self, request: httpx.Request, body: dict[str, Any]) -> dict[str, Any]:
        out_order_no = body.get("out_order_no")
        lines = body.get("receivers")
        if not isinstance(out_order_no, str) or not _OUT_NO.fullmatch(out_order_no):
            raise _Refusal(400, "PARAM_ERROR", "商户分账单号格式不正确")
        if not isinstance(lines, list) or not 1 <= len(lines) <= 50:
            raise _Refusal(400, "PARAM_ERROR", "分账接收方列表 1..50")
        canonical = {
            "transaction_id": body.get("transaction_id"),
            "unfreeze_unsplit": body.get("unfreeze_unsplit"),
            "receivers": [
                {**line, "name": self._decrypt(request, line["name"]) if "name" in line else None}
                for line in lines
            ],
        }
        if out_order_no in self.orders:
            if self._requests[out_order_no] != canonical:
                raise _Refusal(400, "INVALID_REQUEST", "商户分账单号重复，请求参数与原请求不一致")
            return self.orders[out_order_no]
        for line in lines:
            amount, description = line.get("amount"), line.get("description")
            if not isinstance(amount, int) or amount < 1 or not isinstance(description, str):
                raise _Refusal(400, "PARAM_ERROR", "分账金额或描述不正确")
            if not 1 <= len(description) <= 80:
                raise _Refusal(400, "PARAM_ERROR", "分账描述超长")
            if line.get("type") == "PERSONAL_OPENID" and not body.get("appid"):
                raise _Refusal(400, "PARAM_ERROR", "个人接收方需要 appid")
        trade = self.transactions.get(str(body.get("transaction_id")))
        if trade is None:
            raise _Refusal(400, "INVALID_REQUEST", "微信订单号不存在")
        if not trade["profit_sharing"]:
            raise _Refusal(400, "INVALID_REQUEST", "非分账订单不支持分账")
        if trade["requests"] >= 50:
            raise _Refusal(400, "INVALID_REQUEST", "同一订单分账请求已达 50 次")
        total = sum(line["amount"] for line in lines)
        if total > trade["unsplit"]:
            raise _Refusal(403, "NOT_ENOUGH", "分账金额不足")
        if trade["shared"] + total > trade["amount"] * self.max_ratio_bp // 10_000:
            raise _Refusal(400, "INVALID_REQUEST", "分账金额超出最大分账比例")
        trade["requests"] += 1
        trade["shared"] += total
        trade["unsplit"] = 0 if body["unfreeze_unsplit"] else trade["unsplit"] - total
        now = self._now()
        order = {
            "transaction_id": body["transaction_id"],
            "out_order_no": out_order_no,
            "order_id": f"30084507402014111100{self._next_id('order'):08d}",
            "state": "PROCESSING",
            "receivers": [
                {
                    "amount": line["amount"],
                    "description": line["description"],
                    "type": line["type"],
                    "account": line["account"],
                    "result": "PENDING",
                    "detail_id": f"36011111111111111111{self._next_id('detail'):04d}",
                    "create_time": now,
                }
                for line in lines
            ],
        }
        self.orders[out_order_no] = order
        self._requests[out_order_no] = canonical
        if self.finish_immediately:
            self.finish(out_order_no)
        return order

    def _return(self, body: dict[str, Any]) -> dict[str, Any]:
        out_return_no = body.get("out_return_no")
        if not isinstance(out_return_no, str) or not _OUT_NO.fullmatch(out_return_no):
            raise _Refusal(400, "PARAM_ERROR", "商户回退单号格式不正确")
        if out_return_no in self.returns:
            if self._requests["return:" + out_return_no] != body:
                raise _Refusal(400, "INVALID_REQUEST", "商户回退单号重复，请求参数与原请求不一致")
            return self.returns[out_return_no]
        order = self.orders.get(str(body.get("out_order_no")))
        if order is None:
            raise _Refusal(400, "INVALID_REQUEST", "分账单不存在")
        amount = body.get("amount")
        if not isinstance(amount, int) or amount < 1:
            raise _Refusal(400, "PARAM_ERROR", "回退金额不正确")
        paid = sum(
            line["amount"]
            for line in order["receivers"]
            if line["type"] == "MERCHANT_ID"
            and line["account"] == body.get("return_mchid")
            and line.get("result") == "SUCCESS"
        )
        if paid == 0:
            raise _Refusal(400, "INVALID_REQUEST", "回退方不存在")
        returned = sum(
            item["amount"]
            for item in self.returns.values()
            if item["out_order_no"] == order["out_order_no"]
            and item["return_mchid"] == body["return_mchid"]
            and item["result"] != "FAILED"
        )
        if returned + amount > paid:
            raise _Refusal(400, "INVALID_REQUEST", "回退金额超过可回退金额")
        now = self._now()
        answer = {
            "order_id": order["order_id"],
            "out_order_no": order["out_order_no"],
            "out_return_no": out_return_no,
            "return_id": f"30084507402014111199{self._next_id('return'):08d}",
            "return_mchid": body["return_mchid"],
            "amount": amount,
            "description": body.get("description"),
            "result": self.return_result,
            "create_time": now,
        }
        if self.return_result == "SUCCESS":
            answer["finish_time"] = now
        self.returns[out_return_no] = answer
        self._requests["return:" + out_return_no] = body
        return answer

    # --- answers ---------------------------------------------------------------------------------

    def _signed(self, status: int, answer: dict[str, Any]) -> httpx.Response:
        content = json.dumps(answer, ensure_ascii=False).encode("utf-8")
        forgery = self._forgeries.pop(0) if self._forgeries else None
        timestamp = self.clock.timestamp() - (600 if forgery == "stale" else 0)
        nonce = f"FAKENONCE{self._next_id('nonce'):023d}"
        signer = _key("attacker" if forgery == "wrong_key" else "platform")
        message = f"{timestamp}\n{nonce}\n".encode() + content + b"\n"
        signature = base64.b64encode(signer.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()
        if forgery == "tampered_body":
            content = content.replace(b'"PROCESSING"', b'"FINISHED"').replace(b'"PENDING"', b'"SUCCESS"')
        headers = {"Content-Type": "application/json", "Request-ID": f"08{self._next_id('request'):022d}"}
        if forgery != "unsigned":
            headers |= {
                "Wechatpay-Timestamp": str(timestamp),
                "Wechatpay-Nonce": nonce,
                "Wechatpay-Signature": signature,
                "Wechatpay-Serial": "PUB_KEY_ID_UNKNOWN"
                if forgery == "unknown_serial"
                else self.platform_key_id,
            }
        return httpx.Response(status, content=content, headers=headers)

    def _now(self) -> str:
        return self.clock().astimezone(CHINA).isoformat(timespec="seconds")

    def _next_id(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]
