"""WeChat Pay errors. Validation of our own input raises ``ValidationFailed`` before anything is sent;
these are about what WeChat Pay answered (or did not).

``retryable`` tells the outbox whether the same request may be sent again unchanged. Every write is
keyed (``out_order_no``, ``out_return_no``), so resending after an unknown outcome is safe: WeChat Pay
treats a repeat as the same request.
"""

from __future__ import annotations

from datong.core.errors import DatongError


class WeChatPayError(DatongError):
    """WeChat Pay refused or failed a request. ``status`` is the HTTP status (None without an answer),
    ``wechatpay_code`` its error code (``PARAM_ERROR``, ``INVALID_REQUEST``, ``NOT_ENOUGH``, ...)."""

    code = "wechatpay"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        wechatpay_code: str | None = None,
        field: str | None = None,
    ) -> None:
        self.status = status
        self.wechatpay_code = wechatpay_code
        super().__init__(message, field=field, status=status, wechatpay_code=wechatpay_code)


class WeChatPayUnavailable(WeChatPayError):
    """No usable answer: network failure, HTTP 5xx or ``SYSTEM_ERROR``, 429 rate limits, or a body
    that is not WeChat Pay's JSON. Send the same request again later."""

    retryable = True


class WeChatPayBadSignature(WeChatPayUnavailable):
    """The answer's signature is missing, wrong, from an unknown key, or too old: it is not trusted and
    nothing in it was used. Retrying (same request) or querying is safe; repeated, it means tampering
    or a platform key rotation that the configuration has not caught up with."""


class WeChatPayRejected(WeChatPayError):
    """A 4xx answer: the request breaks a rule (``PARAM_ERROR``, ``INVALID_REQUEST``, ``NO_AUTH``,
    ``SIGN_ERROR``...). Sending it again unchanged fails again."""


class WeChatPayNotEnough(WeChatPayRejected):
    """403 ``NOT_ENOUGH``: the order has less unsplit money than the request shares."""


class WeChatPayNotFound(WeChatPayRejected):
    """404 ``RESOURCE_NOT_EXISTS``: no such split or return (for a query)."""
