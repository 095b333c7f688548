"""A commission statement as files for finance and the stores: CSV (UTF-8 with a byte-order mark, so
Excel opens the Chinese headers right) and Excel. Pure functions: rows in, bytes out.

Two tables: the summary, one row a guide (导购编号, 导购, 门店, 订单数, 佣金, 退款扣回, 调整, 应付) and a
合计 row, and the lines behind it, one a ledger transfer. In Excel they are two sheets (汇总, 明细); as
CSV, two files (``part`` summary or lines). Amounts are in yuan with two decimals, exactly (from fen).

A text cell a spreadsheet would run as a formula (a name or reason starting with ``=``, ``+``, ``-``,
``@``) is written as text: in Excel as a string cell, in CSV behind an apostrophe.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from decimal import Decimal

from datong.core.clock import CHINA_TZ
from datong.guides.queries import StatementLine, StatementRow

SUMMARY_HEADER = (
    "导购编号",
    "导购",
    "门店",
    "订单数",
    "佣金(元)",
    "退款扣回(元)",
    "调整(元)",
    "已分账支付(元)",
    "应付(元)",
)
LINES_HEADER = ("导购编号", "导购", "时间", "类型", "金额(元)", "渠道", "订单号", "原因", "流水号")
KIND_NAMES = {
    "commission": "佣金",
    "commission_clawback": "退款扣回",
    "commission_adjust": "调整",
    "commission_payout": "分账支付",
}
TOTAL = "合计"
PARTS = ("summary", "lines")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

Cell = str | int | Decimal | None


def yuan(fen: int) -> Decimal:
    """Fen as yuan, exactly, with two decimals (2400 → 24.00)."""
    return Decimal(fen).scaleb(-2)


def summary_table(rows: Sequence[StatementRow]) -> list[list[Cell]]:
    table: list[list[Cell]] = [list(SUMMARY_HEADER)]
    for r in rows:
        table.append(
            [
                r.guide_code,
                r.guide_name,
                r.store_code,
                r.orders,
                yuan(r.earned_fen),
                yuan(r.clawed_back_fen),
                yuan(r.adjusted_fen),
                yuan(r.paid_out_fen),
                yuan(r.net_fen),
            ]
        )
    table.append(
        [
            TOTAL,
            None,
            None,
            sum(r.orders for r in rows),
            yuan(sum(r.earned_fen for r in rows)),
            yuan(sum(r.clawed_back_fen for r in rows)),
            yuan(sum(r.adjusted_fen for r in rows)),
            yuan(sum(r.paid_out_fen for r in rows)),
            yuan(sum(r.net_fen for r in rows)),
        ]
    )
    return table


def lines_table(rows: Sequence[StatementRow], lines: Sequence[StatementLine]) -> list[list[Cell]]:
    guides = {r.guide_id: r for r in rows}
    table: list[list[Cell]] = [list(LINES_HEADER)]
    for line in lines:
        guide = guides.get(line.guide_id)
        table.append(
            [
                guide.guide_code if guide else line.guide_id,
                guide.guide_name if guide else None,
                line.at.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S"),
                KIND_NAMES.get(line.code, line.code),
                yuan(line.amount_fen),
                line.channel,
                line.order_no,
                line.reason,
                line.transfer_id,
            ]
        )
    return table


def _csv_text(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return "'" + value if value.startswith(_FORMULA_START) else value
    return str(value)


def statement_csv(rows: Sequence[StatementRow], lines: Sequence[StatementLine], *, part: str) -> bytes:
    """One table of the statement as CSV: ``summary`` or ``lines``."""
    if part not in PARTS:
        raise ValueError("part is summary or lines")
    table = summary_table(rows) if part == "summary" else lines_table(rows, lines)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in table:
        writer.writerow([_csv_text(value) for value in row])
    return out.getvalue().encode("utf-8-sig")


def statement_xlsx(period: str, rows: Sequence[StatementRow], lines: Sequence[StatementLine]) -> bytes:
    """Both tables as an Excel workbook: sheets 汇总 and 明细, amounts as numbers shown with two decimals."""
    from openpyxl import Workbook  # imported here: only Excel exports pay for it

    book = Workbook()
    summary = book.active
    summary.title = "汇总"
    detail = book.create_sheet("明细")
    for sheet, table in ((summary, summary_table(rows)), (detail, lines_table(rows, lines))):
        for values in table:
            sheet.append(values)
        for row in sheet.iter_rows(min_row=2):
            for cell in row:
                if isinstance(cell.value, Decimal):
                    cell.number_format = "0.00"
                elif isinstance(cell.value, str):
                    cell.data_type = "s"  # never a formula, whatever the text starts with
        sheet.freeze_panes = "A2"
    book.properties.title = f"导购佣金 {period}"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
