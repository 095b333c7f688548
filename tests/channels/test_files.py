"""Reading input files: encodings, headers, row numbering, Excel cells, streamed JSON."""

from __future__ import annotations

import csv
import json
import tempfile
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datong.channels import files
from datong.channels.files import (
    detect_encoding,
    excel_cell_text,
    open_table,
    read_json_records,
    read_rows,
)


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [("gbk", "gb18030"), ("gb18030", "gb18030"), ("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig")],
)
def test_chinese_csv_encodings_are_detected_and_decoded(tmp_path: Path, encoding: str, expected: str) -> None:
    text = "订单编号,买家会员名,收货人姓名\n1001,小明同学,张三\n"
    path = write(tmp_path / "a.csv", text, encoding)
    assert detect_encoding(path.read_bytes(), complete=True) == expected
    assert list(read_rows(path)) == [
        (1, {"订单编号": "1001", "买家会员名": "小明同学", "收货人姓名": "张三"})
    ]


def test_a_multibyte_character_cut_by_the_sample_end_is_not_an_error() -> None:
    sample = "会员".encode()[:-1]  # half of 员
    assert detect_encoding(sample, complete=False) == "utf-8"
    assert detect_encoding("会员".encode("gbk")[:-1], complete=False) == "gb18030"


def test_headers_are_cleaned_and_rows_keep_file_numbering(tmp_path: Path) -> None:
    text = (
        "\n"  # blank lines before the header are skipped
        '\ufeff 卡号 ,="姓名",\'手机,卡号\n'
        "A1,张三,13812345678,dup\n"
        "\n"
        ",,,\n"
        "A2,李四\n"
        "A3,王五,13900001111,x,surplus,,more\n"
    )
    path = write(tmp_path / "m.csv", text)
    with open_table(path) as table:
        assert table.headers == ["卡号", "姓名", "手机", "卡号_2"]
        rows = list(table)
    assert rows == [
        (1, {"卡号": "A1", "姓名": "张三", "手机": "13812345678", "卡号_2": "dup"}),
        (4, {"卡号": "A2", "姓名": "李四", "手机": "", "卡号_2": ""}),
        (
            5,
            {
                "卡号": "A3",
                "姓名": "王五",
                "手机": "13900001111",
                "卡号_2": "x",
                "_extra_1": "surplus",
                "_extra_3": "more",
            },
        ),
    ]


def test_empty_header_cells_get_a_position_name_and_trailing_ones_are_dropped(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "a,,b,,\n1,2,3,,\n")
    assert list(read_rows(path)) == [(1, {"a": "1", "_col_2": "2", "b": "3"})]


def test_tab_separated_files_are_read(tmp_path: Path) -> None:
    path = write(tmp_path / "t.txt", "卡号\t姓名\nA1\t张, 三\n", "utf-16")
    assert list(read_rows(path)) == [(1, {"卡号": "A1", "姓名": "张, 三"})]


def test_cells_are_raw_text_with_guards_kept(tmp_path: Path) -> None:
    path = write(tmp_path / "g.csv", '订单编号,手机\n="2890123456789", \'13812345678\n')
    assert list(read_rows(path)) == [(1, {"订单编号": '="2890123456789"', "手机": " '13812345678"})]


def test_excel_cells_become_text(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["卡号", "积分", "生日", "开卡时间", "余额", "VIP"])
    sheet.append([880001, 120.0, datetime(1990, 3, 7), datetime(2023, 5, 1, 9, 30, 5), 12.5, True])
    sheet.append([None, None, None, None, None, None])
    sheet.append(["880002", 13812345678.0, None, None, None, None])
    path = tmp_path / "m.xlsx"
    workbook.save(path)
    assert list(read_rows(path)) == [
        (
            1,
            {
                "卡号": "880001",
                "积分": "120",
                "生日": "1990-03-07 00:00:00",
                "开卡时间": "2023-05-01 09:30:05",
                "余额": "12.5",
                "VIP": "TRUE",
            },
        ),
        (3, {"卡号": "880002", "积分": "13812345678", "生日": "", "开卡时间": "", "余额": "", "VIP": ""}),
    ]


def test_excel_cell_text_for_plain_values() -> None:
    assert excel_cell_text(None) == ""
    assert excel_cell_text(date(2024, 1, 2)) == "2024-01-02"
    assert excel_cell_text(3) == "3"
    assert excel_cell_text("x") == "x"


def test_old_xls_is_refused_with_advice(tmp_path: Path) -> None:
    path = write(tmp_path / "old.xls", "not really")
    with pytest.raises(ValueError, match=r"\.xls workbooks are not supported"):
        list(read_rows(path))


# ---------------------------------------------------------------------------------------------- JSON


def test_json_lines_with_a_broken_line(tmp_path: Path) -> None:
    path = write(tmp_path / "f.jsonl", '{"openid": "o1"}\n\n{"openid": \n{"openid": "o3"}\n')
    records = list(read_json_records(path))
    assert [(r.row_no, r.value, r.error is None) for r in records] == [
        (1, {"openid": "o1"}, True),
        (3, None, False),
        (4, {"openid": "o3"}, True),
    ]
    assert records[1].text == '{"openid":'
    assert records[1].error is not None and records[1].error.startswith("not valid JSON")


ARRAY = (
    ' \n[ {"openid": "o1", "tagid_list": [1, 2], "nickname": "a,b]c\\"d"},\n'
    '  {"openid": "o2", "sex": 1,, "x": 2},\n'
    '  {"openid": "o3"} junk,\n'
    "  12345,\n"
    '  {"openid": "o5", "nested": {"k": [1, {"z": "]"}]}}\n'
    "]\n"
)


def _array_summary(path: Path) -> list[tuple[int, object, str | None]]:
    return [(r.row_no, r.value, r.text) for r in read_json_records(path)]


EXPECTED_ARRAY = [
    (1, {"openid": "o1", "tagid_list": [1, 2], "nickname": 'a,b]c"d'}, None),
    (2, None, '{"openid": "o2", "sex": 1,, "x": 2}'),
    (3, None, '{"openid": "o3"} junk'),
    (4, 12345, None),
    (5, {"openid": "o5", "nested": {"k": [1, {"z": "]"}]}}, None),
]


def test_json_array_with_malformed_elements_yields_an_error_for_each(tmp_path: Path) -> None:
    path = write(tmp_path / "a.json", ARRAY)
    assert _array_summary(path) == EXPECTED_ARRAY
    errors = [r.error for r in read_json_records(path)]
    assert errors[1] is not None and errors[1].startswith("not valid JSON")
    assert errors[2] == "not valid JSON: unexpected text after the value"


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 16])
def test_json_array_decodes_the_same_over_tiny_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    # Every element boundary and every number falls across a chunk edge at some chunk size.
    monkeypatch.setattr(files, "JSON_CHUNK_CHARS", chunk)
    path = write(tmp_path / "a.json", ARRAY)
    assert _array_summary(path) == EXPECTED_ARRAY


def test_json_array_edge_cases(tmp_path: Path) -> None:
    assert list(read_json_records(write(tmp_path / "e.json", "[]"))) == []
    trailing = [(r.row_no, r.value) for r in read_json_records(write(tmp_path / "t.json", "[1, 2,]"))]
    assert trailing == [(1, 1), (2, 2)]
    cut = list(read_json_records(write(tmp_path / "c.json", '[{"a": 1}, {"b": ')))
    assert [(r.row_no, r.value, r.error is None) for r in cut] == [(1, {"a": 1}, True), (2, None, False)]
    tail = list(read_json_records(write(tmp_path / "x.json", "[1] 2")))
    assert [(r.row_no, r.error) for r in tail] == [(1, None), (2, "text after the closing ]")]


def test_json_array_of_many_records_streams(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "JSON_CHUNK_CHARS", 4096)
    items = [{"openid": f"o{i}", "nickname": "小明" * (i % 5)} for i in range(5000)]
    path = write(tmp_path / "big.json", json.dumps(items, ensure_ascii=False))
    seen = 0
    for record in read_json_records(path):
        assert record.value == items[record.row_no - 1]
        seen += 1
    assert seen == 5000


def test_a_gbk_json_file_is_decoded(tmp_path: Path) -> None:
    path = write(tmp_path / "g.json", '[{"nickname": "小明", "city": "深圳"}]', "gbk")
    assert [r.value for r in read_json_records(path)] == [{"nickname": "小明", "city": "深圳"}]


# ---------------------------------------------------------------------------------------------- properties

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='ab,]}[{"\\ 小明\n'),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(items=st.lists(_json_values, max_size=8), chunk=st.integers(min_value=1, max_value=40))
def test_json_array_round_trips_at_any_chunk_size(items: list[object], chunk: int) -> None:
    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
        patch.setattr(files, "JSON_CHUNK_CHARS", chunk)
        path = write(Path(folder) / "a.json", json.dumps(items, ensure_ascii=False, indent=1))
        records = list(read_json_records(path))
    assert [r.error for r in records] == [None] * len(items)
    assert [r.value for r in records] == items


_cells = st.text(alphabet="a1 ,\"'\n小明=", max_size=6)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.lists(_cells, min_size=3, max_size=3), max_size=6))
def test_csv_cells_round_trip(rows: list[list[str]]) -> None:
    headers = ["卡号", "姓名", "备注"]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.csv"
        with path.open("w", encoding="utf-8", newline="") as out:
            csv.writer(out).writerows([headers, *rows])
        read = list(read_rows(path))
    kept = [(number, row) for number, row in enumerate(rows, start=1) if any(cell.strip() for cell in row)]
    assert read == [(number, dict(zip(headers, row, strict=True))) for number, row in kept]
