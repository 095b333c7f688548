"""The JD POP order export (an older layout; see ``shared/reference/channels.md``).

JD writes one row per order line: rows that share one 订单号 are the lines of one order. Each row
becomes its own record carrying the order header and that row's single line; the import pipeline
upserts the order by its number and appends the lines, so nothing here has to hold rows back to
group them (which would break streaming and the one-record-per-row error report).
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
from datong.channels.records import PIN, IdentityKey, OrderFields, OrderLineFields, ParsedRecord
from datong.identity.rules import parse_amount_fen, parse_datetime, parse_int

COLUMNS: dict[str, tuple[str, ...]] = {
    "order_no": ("订单号", "订单编号"),
    "pin": ("下单帐号", "下单账号"),
    "sku": ("商品ID", "商品编号"),
    "title": ("商品名称",),
    "quantity": ("订购数量", "商品数量"),
    "unit_price": ("京东价",),
    "total": ("订单金额",),
    "paid": ("应付金额",),
    "status": ("订单状态",),
    "created_at": ("下单时间",),
    "paid_at": ("付款确认时间",),
    "completed_at": ("订单完成时间",),
    "receiver_name": ("客户姓名",),
    "receiver_address": ("客户地址",),
    "phone": ("联系电话",),
    "shop_name": ("店铺名称",),
    # Not in the platform's export: a column the brand adds (see docs/coupon-orders.md).
    "coupon_codes": COUPON_CODE_HEADERS,
}

STATUSES: dict[str, str] = {
    "等待付款": "created",
    "等待出库": "paid",
    "等待发货": "paid",
    "等待确认收货": "shipped",
    "完成": "completed",
    "已完成": "completed",
    "已取消": "closed",
    "锁定": "closed",
}


def _prepare(headers: list[str]) -> Columns:
    columns = Columns(headers, COLUMNS)
    require_columns("JD order export", columns, ["order_no", "pin"])
    return columns


def _order(row: Row) -> OrderFields | None:
    order_no = row.required("order_no")
    status, status_raw = map_status(row.text("status"), STATUSES)
    paid = row.convert("paid", parse_amount_fen, required=True)
    total = row.convert("total", parse_amount_fen)
    created_at = row.convert("created_at", parse_datetime)
    paid_at = row.convert("paid_at", parse_datetime)
    completed_at = row.convert("completed_at", parse_datetime)
    title = row.text("title")
    sku = row.text("sku")
    quantity = row.convert("quantity", parse_int)
    unit_price = row.convert("unit_price", parse_amount_fen)
    codes = coupon_codes(row, "coupon_codes")
    if order_no is None:
        return None
    order = OrderFields(
        order_no=order_no,
        status=status,
        status_raw=status_raw,
        total_fen=total if total is not None else (paid or 0),
        paid_fen=paid or 0,
        created_at=created_at,
        paid_at=paid_at,
        completed_at=completed_at,
        shop_name=row.text("shop_name"),
        coupon_codes=codes,
    )
    if title is not None or sku is not None:
        order.lines.append(
            OrderLineFields(
                title=title or sku or "",
                quantity=quantity if quantity is not None else 1,
                sku=sku,
                unit_price_fen=unit_price,
            )
        )
    return order


def _build(row_no: int, raw: dict[str, str], columns: Columns) -> ParsedRecord:
    record = ParsedRecord(row_no=row_no, raw=raw)
    row = Row(raw, columns, record.errors)
    pin = row.text("pin")
    if pin is None:
        row.error("pin", MISSING)
    elif is_masked(pin):  # a masked pin names no single account
        row.error("pin", "is masked")
    else:
        record.identities.append(IdentityKey(PIN, pin))
    record.weak = receiver_evidence(
        row.text("receiver_name"), [row.text("phone")], row.text("receiver_address")
    )
    record.order = _order(row)
    return record


def parse_jd_orders(path: FilePath, *, source: str = "jd") -> Iterator[ParsedRecord]:
    """One record per row (= per order line) of a JD POP order export (CSV in any Chinese encoding, or .xlsx).

    Rows sharing an 订单号 yield separate records with the same order header and one line each;
    the pipeline upserts the order by number and appends the lines. Raises ``ValueError`` at once
    if the file has no 订单号 or 下单帐号 column. ``source`` is the pipeline's label.
    """
    return open_records(path, _prepare, _build)
