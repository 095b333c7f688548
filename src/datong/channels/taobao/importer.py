"""The Taobao/Tmall order report (订单报表, ``ExportOrderList*.csv``), classic and newer column names.

The buyer account (买家会员名, and ouid/omid when the export has them) is the identity. The receiver
(收货人) may be someone else — a gift, a family member — so name, phone and address are only weak
evidence. See ``shared/reference/channels.md``.
"""

from __future__ import annotations

from collections.abc import Iterator

from datong.channels.fields import (
    COUPON_CODE_HEADERS,
    MISSING,
    Columns,
    Row,
    coupon_codes,
    is_masked,
    map_status,
    open_records,
    receiver_evidence,
    require_columns,
)
from datong.channels.files import FilePath
from datong.channels.records import (
    NICK,
    OMID,
    OUID,
    IdentityKey,
    OrderFields,
    OrderLineFields,
    ParsedRecord,
)
from datong.identity.rules import parse_amount_fen, parse_datetime, parse_int

# field → header names, preferred first (the first is the name used in errors when absent).
# The newer export names are unconfirmed as to version, so both are accepted side by side.
COLUMNS: dict[str, tuple[str, ...]] = {
    "order_no": ("订单编号", "订单号"),
    "nick": ("买家会员名", "买家昵称"),
    "ouid": ("ouid",),
    "omid": ("omid", "会员通ID"),
    "total": ("总金额",),
    "paid": ("买家实际支付金额", "买家实付金额"),
    "postage": ("买家应付邮费",),
    "status": ("订单状态",),
    "receiver_name": ("收货人姓名",),
    "receiver_address": ("收货地址",),
    "mobile": ("联系手机",),
    "phone": ("联系电话",),
    "created_at": ("订单创建时间", "买家下单时间"),
    "paid_at": ("订单付款时间", "买家付款时间"),
    "title": ("宝贝标题",),
    "quantity": ("宝贝总数量",),
    "shop_id": ("店铺Id",),
    "shop_name": ("店铺名称",),
    # Not in the platform's export: a column the brand adds (see docs/coupon-orders.md).
    "coupon_codes": COUPON_CODE_HEADERS,
}

# Keys are written with half-width commas: map_status folds the export's full-width ones.
STATUSES: dict[str, str] = {
    "等待买家付款": "created",
    "买家已付款,等待卖家发货": "paid",
    "等待卖家发货": "paid",
    "卖家已发货,等待买家确认": "shipped",
    "卖家已发货,等待买家确认收货": "shipped",
    "交易成功": "completed",
    "交易关闭": "closed",
}


def _prepare(headers: list[str]) -> Columns:
    columns = Columns(headers, COLUMNS)
    require_columns("Tmall/Taobao order report", columns, ["order_no"])
    if not any(columns.header(field) for field in ("nick", "ouid", "omid")):
        require_columns("Tmall/Taobao order report", columns, ["nick"])
    return columns


def _identities(row: Row, record: ParsedRecord) -> None:
    nick = row.text("nick")
    shop_id = row.text("shop_id")
    ouid = row.text("ouid")
    omid = row.text("omid")
    if nick is not None and not is_masked(nick):
        record.identities.append(IdentityKey(NICK, nick))
    # ouid is one per user per shop: without the shop id it names nobody, so it is left out.
    if ouid is not None and shop_id is not None:
        record.identities.append(IdentityKey(OUID, ouid, namespace=shop_id))
    if omid is not None:
        record.identities.append(IdentityKey(OMID, omid))
    if not record.identities:
        row.error("nick", MISSING if nick is None else "is masked and the row has no ouid or omid")


def _order(row: Row) -> OrderFields | None:
    order_no = row.required("order_no")
    status, status_raw = map_status(row.text("status"), STATUSES)
    paid = row.convert("paid", parse_amount_fen, required=True)
    total = row.convert("total", parse_amount_fen)
    postage = row.convert("postage", parse_amount_fen)
    created_at = row.convert("created_at", parse_datetime)
    paid_at = row.convert("paid_at", parse_datetime)
    title = row.text("title")
    quantity = row.convert("quantity", parse_int)
    codes = coupon_codes(row, "coupon_codes")
    if order_no is None:
        return None
    order = OrderFields(
        order_no=order_no,
        status=status,
        status_raw=status_raw,
        total_fen=total if total is not None else (paid or 0),
        paid_fen=paid or 0,
        postage_fen=postage or 0,
        created_at=created_at,
        paid_at=paid_at,
        shop_id=row.text("shop_id"),
        shop_name=row.text("shop_name"),
        coupon_codes=codes,
    )
    if title is not None:
        # The report has one row per order: 宝贝标题 may join several items, counted together.
        order.lines.append(OrderLineFields(title=title, quantity=quantity if quantity is not None else 1))
    return order


def _build(row_no: int, raw: dict[str, str], columns: Columns) -> ParsedRecord:
    record = ParsedRecord(row_no=row_no, raw=raw)
    row = Row(raw, columns, record.errors)
    _identities(row, record)
    record.weak = receiver_evidence(
        row.text("receiver_name"), [row.text("mobile"), row.text("phone")], row.text("receiver_address")
    )
    record.order = _order(row)
    return record


def parse_tmall_orders(path: FilePath, *, source: str = "tmall") -> Iterator[ParsedRecord]:
    """One record per row of a Tmall/Taobao order report (GBK, GB18030 or UTF-8 CSV, or .xlsx).

    Raises ``ValueError`` at once if the file has no order-number or buyer column (not an order
    report). Row problems (missing order number or buyer, bad amount or time) are ``FieldError``s on
    a record that is still yielded. ``source`` (``tmall`` or ``taobao``) is the pipeline's label;
    the rows read the same either way.
    """
    return open_records(path, _prepare, _build)
