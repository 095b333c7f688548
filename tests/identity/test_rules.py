"""Normalisation rules: every documented format, every refusal, and a few properties."""

from __future__ import annotations

from datetime import UTC, date, datetime

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from datong.identity import address as address_module
from datong.identity.rules import (
    Address,
    IdNumber,
    NormalizationError,
    division_names,
    is_masked_phone,
    name_initials_pinyin,
    name_pinyin,
    normalize_email,
    normalize_gender,
    normalize_masked_phone,
    normalize_name,
    normalize_phone,
    parse_address,
    parse_amount_fen,
    parse_date,
    parse_datetime,
    parse_id_number,
    parse_int,
    phone_mask,
    strip_excel_guard,
)

ALL_FUNCTIONS = [
    normalize_phone,
    normalize_masked_phone,
    normalize_name,
    name_pinyin,
    name_initials_pinyin,
    parse_date,
    parse_datetime,
    normalize_gender,
    parse_id_number,
    parse_address,
    normalize_email,
    parse_amount_fen,
    parse_int,
]


@pytest.mark.parametrize("func", ALL_FUNCTIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("blank", [None, "", "   ", "\t \n", '=""', "'"])
def test_blank_input_is_none(func: object, blank: str | None) -> None:
    assert callable(func)
    assert func(blank) is None


def test_is_masked_phone_blank_is_false() -> None:
    assert is_masked_phone(None) is False
    assert is_masked_phone("  ") is False


# --- Excel guards -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('="123456"', "123456"),
        ("'13812345678", "13812345678"),
        ("\t13812345678 \t", "13812345678"),
        ('  ="2024010212345678"  ', "2024010212345678"),
        ("plain text", "plain text"),
        (None, ""),
        ("", ""),
    ],
)
def test_strip_excel_guard(raw: str | None, expected: str) -> None:
    assert strip_excel_guard(raw) == expected


# --- phones -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "13812345678",
        "+86 138 1234 5678",
        "86-13812345678",
        "0086 13812345678",
        "+8613812345678",
        "138-1234-5678",
        "138 1234 5678",
        "(138) 1234-5678",
        "１３８１２３４５６７８",
        "＋８６ １３８ １２３４ ５６７８",
        '="13812345678"',
        "'13812345678",
        "\t13812345678\t",
    ],
)
def test_normalize_phone_mainland_mobile(raw: str) -> None:
    assert normalize_phone(raw) == "13812345678"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("19912345678", "19912345678"),
        ("17400012345", "17400012345"),
        ("+852 9123 4567", "+85291234567"),
        ("+85291234567", "+85291234567"),
        ("00852 9123 4567", "+85291234567"),
        ("+853 6612 3456", "+85366123456"),
        ("+886 912 345 678", "+886912345678"),
        ("+1 650 253 0000", "+16502530000"),
        ("+44 7911 123456", "+447911123456"),
    ],
)
def test_normalize_phone_other_valid(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected


@pytest.mark.parametrize("raw", ["010-12345678", "0755-86013388", "+86 10 1234 5678", "(021) 6123 4567"])
def test_normalize_phone_rejects_landlines(raw: str) -> None:
    with pytest.raises(NormalizationError) as err:
        normalize_phone(raw)
    assert err.value.reason == "a landline, not a mobile number"


@pytest.mark.parametrize("raw", ["138****1234", "138xxxx1234", "+86 138 **** 1234", "138*****234"])
def test_normalize_phone_rejects_masked(raw: str) -> None:
    with pytest.raises(NormalizationError, match="a masked phone number"):
        normalize_phone(raw)


@pytest.mark.parametrize(
    "raw",
    ["12345", "12312345678", "1381234567", "138123456789", "phone", "+999 1234 5678", "10000000000"],
)
def test_normalize_phone_rejects_invalid(raw: str) -> None:
    with pytest.raises(NormalizationError) as err:
        normalize_phone(raw)
    digits = sum(c.isdigit() for c in raw.replace("+", ""))
    assert err.value.reason == f"not a mainland mobile or international number ({digits} digits)"


def test_normalize_phone_rejects_service_numbers() -> None:
    with pytest.raises(NormalizationError, match="a service number, not a personal mobile number"):
        normalize_phone("400-810-8888")


def test_normalization_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"\(5 digits\)"):
        normalize_phone("12345")


@pytest.mark.parametrize(
    "raw",
    ["138****1234", "138xxxx1234", "138XXXX1234", "138＊＊＊＊1234", "+86 138****1234", "86 138 **** 1234"],
)
def test_masked_phone_spellings(raw: str) -> None:
    assert is_masked_phone(raw) is True
    assert normalize_masked_phone(raw) == "138****1234"


@pytest.mark.parametrize(
    "raw", ["13812345678", "138*****234", "138***1234", "1381****234", "238****1234", "张伟", "138****12345"]
)
def test_not_masked_phone(raw: str) -> None:
    assert is_masked_phone(raw) is False
    assert normalize_masked_phone(raw) is None


def test_phone_mask() -> None:
    assert phone_mask("13812341234") == "138****1234"
    assert phone_mask("13912345678") == "139****5678"
    assert phone_mask("+86 139 1234 5678") == "139****5678"
    assert phone_mask("13812341234") == normalize_masked_phone("138xxxx1234")


@pytest.mark.parametrize("raw", ["+85291234567", "12345"])
def test_phone_mask_rejects_non_mainland(raw: str) -> None:
    with pytest.raises(NormalizationError):
        phone_mask(raw)


MOBILE_PREFIXES = ["130", "133", "135", "138", "139", "150", "158", "166", "177", "180", "186", "188", "199"]


@st.composite
def formatted_mobiles(draw: st.DrawFn) -> tuple[str, str]:
    national = draw(st.sampled_from(MOBILE_PREFIXES)) + draw(st.text("0123456789", min_size=8, max_size=8))
    sep = draw(st.sampled_from(["", " ", "-"]))
    body = draw(st.sampled_from([national, f"{national[:3]}{sep}{national[3:7]}{sep}{national[7:]}"]))
    prefix = draw(st.sampled_from(["", "+86 ", "+86", "86-", "86", "0086 ", "0086"]))
    text = prefix + body
    if draw(st.booleans()):
        text = text.translate(str.maketrans("0123456789+", "０１２３４５６７８９＋"))
    guard = draw(st.sampled_from(["{}", '="{}"', "'{}", " \t{} "]))
    return guard.format(text), national


@given(formatted_mobiles())
def test_property_formatted_mobiles_normalise_to_national_digits(case: tuple[str, str]) -> None:
    text, national = case
    assert normalize_phone(text) == national


@given(st.text("0123456789", min_size=10, max_size=10))
def test_property_fast_path_agrees_with_phonenumbers(tail: str) -> None:
    # The shortcut for clean 11-digit input must accept exactly what phonenumbers itself accepts.
    digits = "1" + tail
    number = phonenumbers.parse(digits, "CN")
    accepted = phonenumbers.is_valid_number(number) and phonenumbers.number_type(number) in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    )
    if accepted:
        assert normalize_phone(digits) == digits
    else:
        with pytest.raises(NormalizationError):
            normalize_phone(digits)


# --- names ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("张伟", "张伟"),
        (" 张 伟 ", "张伟"),
        ("張偉", "张伟"),
        ("歐陽娜娜", "欧阳娜娜"),
        ("迪丽热巴·迪力木拉提", "迪丽热巴·迪力木拉提"),
        ("迪丽热巴•迪力木拉提", "迪丽热巴·迪力木拉提"),
        ("迪丽热巴・迪力木拉提", "迪丽热巴·迪力木拉提"),
        ("迪丽热巴.迪力木拉提", "迪丽热巴·迪力木拉提"),
        ("迪丽热巴 · 迪力木拉提", "迪丽热巴·迪力木拉提"),
        ("迪丽热巴．迪力木拉提", "迪丽热巴·迪力木拉提"),
        ("jOHN  smith", "John Smith"),
        ("ＪＯＨＮ　ＳＭＩＴＨ", "John Smith"),
        ("o'brien", "O'Brien"),
        ("anne-marie  dupont", "Anne-Marie Dupont"),
        ("David 王", "David 王"),
        ("'李娜", "李娜"),
        ("王小姐", "王小姐"),
        # 乾 is a simplified character too; blind t2s would turn the surname into 干.
        ("乾隆", "乾隆"),
    ],
)
def test_normalize_name(raw: str, expected: str) -> None:
    assert normalize_name(raw) == expected


@pytest.mark.parametrize("raw", ["12345", "---", "138 1234 5678", "?!", "·"])
def test_normalize_name_rejects_non_names(raw: str) -> None:
    with pytest.raises(NormalizationError, match="not a name, it has no letters"):
        normalize_name(raw)


@pytest.mark.parametrize(
    ("raw", "pinyin", "initials"),
    [
        ("张伟", "zhangwei", "zw"),
        ("張偉", "zhangwei", "zw"),
        ("章伟", "zhangwei", "zw"),
        ("张 伟", "zhangwei", "zw"),
        ("吕布", "lvbu", "lb"),
        ("绿", "lv", "l"),
        ("迪丽热巴·迪力木拉提", "dilirebadilimulati", "dlrbdlmlt"),
        ("John Smith", "johnsmith", "js"),
        ("JOSÉ Núñez", "josenunez", "jn"),
        ("David 王", "davidwang", "dw"),
        ("乾隆", "qianlong", "ql"),
    ],
)
def test_name_pinyin(raw: str, pinyin: str, initials: str) -> None:
    assert name_pinyin(raw) == pinyin
    assert name_initials_pinyin(raw) == initials


def test_name_pinyin_rejects_names_without_pinyin() -> None:
    with pytest.raises(NormalizationError, match="no Chinese or Latin letters"):
        name_pinyin("Иван")
    with pytest.raises(NormalizationError, match="not a name"):
        name_pinyin("12345")


# --- dates and times --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "2024-01-02",
        "2024/1/2",
        "2024/01/02",
        "2024.1.2",
        "20240102",
        "2024年1月2日",
        "2024年01月02号",
        "2024年1月2",
        "2024-01-02 00:00:00",
        "2024-01-02 23:59:59",
        "2024/1/2 13:04",
        "2024-01-02T13:04:05",
        "２０２４-０１-０２",
        "２０２４年１月２日",
        '="2024-01-02"',
    ],
)
def test_parse_date(raw: str) -> None:
    assert parse_date(raw) == date(2024, 1, 2)


def test_parse_date_leap_day() -> None:
    assert parse_date("2024-02-29") == date(2024, 2, 29)


@pytest.mark.parametrize(
    "raw",
    [
        "2024-02-30",
        "2023-02-29",
        "2024-13-01",
        "20241301",
        "2024年4月31日",
        "2024-00-10",
    ],
)
def test_parse_date_rejects_impossible_dates(raw: str) -> None:
    with pytest.raises(NormalizationError) as err:
        parse_date(raw)
    assert err.value.reason == f"not a real calendar date: {raw!r}"


@pytest.mark.parametrize("raw", ["24-01-02", "24/1/2", "24.1.2", "24年1月2日"])
def test_parse_date_rejects_two_digit_years(raw: str) -> None:
    with pytest.raises(NormalizationError, match="a two-digit year is ambiguous"):
        parse_date(raw)


@pytest.mark.parametrize("raw", ["01/02/2024", "2024-1/2", "yesterday", "2024", "45291", "2024-01"])
def test_parse_date_rejects_unknown_formats(raw: str) -> None:
    with pytest.raises(NormalizationError, match="not a date in a known format"):
        parse_date(raw)


def test_parse_date_rejects_garbage_after_the_date() -> None:
    with pytest.raises(NormalizationError, match="not a time in a known format"):
        parse_date("2024-01-02 noon")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-01-02 13:04:05", datetime(2024, 1, 2, 5, 4, 5, tzinfo=UTC)),
        ("2024/1/2 13:04", datetime(2024, 1, 2, 5, 4, tzinfo=UTC)),
        ("2024-01-02T13:04:05", datetime(2024, 1, 2, 5, 4, 5, tzinfo=UTC)),
        ("2024-01-02 13:04:05.250", datetime(2024, 1, 2, 5, 4, 5, 250000, tzinfo=UTC)),
        ("2024-01-02 03:04:05", datetime(2024, 1, 1, 19, 4, 5, tzinfo=UTC)),
        ("2024年1月2日 13:04", datetime(2024, 1, 2, 5, 4, tzinfo=UTC)),
        ("2024-01-02", datetime(2024, 1, 1, 16, 0, tzinfo=UTC)),
        ("20240102", datetime(2024, 1, 1, 16, 0, tzinfo=UTC)),
        ("2024-01-02T13:04:05Z", datetime(2024, 1, 2, 13, 4, 5, tzinfo=UTC)),
        ("2024-01-02T13:04:05+00:00", datetime(2024, 1, 2, 13, 4, 5, tzinfo=UTC)),
        ("2024-01-02T13:04:05+08:00", datetime(2024, 1, 2, 5, 4, 5, tzinfo=UTC)),
        ("2024-01-02T13:04:05-0500", datetime(2024, 1, 2, 18, 4, 5, tzinfo=UTC)),
        ("1704171845", datetime(2024, 1, 2, 5, 4, 5, tzinfo=UTC)),
        ('="1704171845"', datetime(2024, 1, 2, 5, 4, 5, tzinfo=UTC)),
        ("２０２４-０１-０２ １３:０４:０５", datetime(2024, 1, 2, 5, 4, 5, tzinfo=UTC)),
    ],
)
def test_parse_datetime(raw: str, expected: datetime) -> None:
    result = parse_datetime(raw)
    assert result == expected
    assert result is not None and result.tzinfo is UTC


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("2024-01-02 25:00", "not a real time of day: '2024-01-02 25:00'"),
        ("2024-01-02 13:60:00", "not a real time of day: '2024-01-02 13:60:00'"),
        ("2024-02-30 10:00", "not a real calendar date: '2024-02-30 10:00'"),
        ("2024-01-02 1pm", "not a time in a known format: '2024-01-02 1pm'"),
        ("24-01-02 10:00", "a two-digit year is ambiguous: '24-01-02 10:00'"),
        ("170417184", "not a date in a known format: '170417184'"),
    ],
)
def test_parse_datetime_rejects(raw: str, reason: str) -> None:
    with pytest.raises(NormalizationError) as err:
        parse_datetime(raw)
    assert err.value.reason == reason


# --- gender -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("男", "M"),
        ("男性", "M"),
        ("M", "M"),
        ("m", "M"),
        ("male", "M"),
        ("Male", "M"),
        ("1", "M"),
        ("先生", "M"),
        ("女", "F"),
        ("女性", "F"),
        ("F", "F"),
        ("f", "F"),
        ("FEMALE", "F"),
        ("2", "F"),
        ("女士", "F"),
        (" 女 ", "F"),
        ("０", None),
        ("0", None),
        ("未知", None),
        ("unknown", None),
        ("保密", None),
    ],
)
def test_normalize_gender(raw: str, expected: str | None) -> None:
    assert normalize_gender(raw) == expected


@pytest.mark.parametrize("raw", ["3", "x", "男女", "boy", "小姐"])
def test_normalize_gender_rejects(raw: str) -> None:
    with pytest.raises(NormalizationError) as err:
        normalize_gender(raw)
    assert err.value.reason == f"not a gender: {raw!r}"


# --- resident ID numbers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("440305199003071236", IdNumber("440305199003071236", date(1990, 3, 7), "M", "440305")),
        ("11010519491231002X", IdNumber("11010519491231002X", date(1949, 12, 31), "F", "110105")),
        ("11010519491231002x", IdNumber("11010519491231002X", date(1949, 12, 31), "F", "110105")),
        ("320102 19851120 5411", IdNumber("320102198511205411", date(1985, 11, 20), "M", "320102")),
        ('="440305199003071236"', IdNumber("440305199003071236", date(1990, 3, 7), "M", "440305")),
        (
            "４４０３０５１９９００３０７１２３６",
            IdNumber("440305199003071236", date(1990, 3, 7), "M", "440305"),
        ),
        # Born 1975, before 南山区's code 440305 existed (1983): stdnum's birth-place check would refuse it.
        ("440305197506150033", IdNumber("440305197506150033", date(1975, 6, 15), "M", "440305")),
    ],
)
def test_parse_id_number(raw: str, expected: IdNumber) -> None:
    assert parse_id_number(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("440305199003071235", "bad check character in the ID number"),
        ("440305199002301239", "bad birth date in the ID number"),
        ("44030519901307123X", "bad birth date in the ID number"),
        ("990105199003071232", "unknown province code in the ID number"),
        ("44030519900307123", "wrong length for an ID number: 17 characters instead of 18"),
        ("4403051990030712361", "wrong length for an ID number: 19 characters instead of 18"),
        ("440305900307123", "an old 15-digit ID number; the 18-character number is needed"),
        ("44030519900307X236", "an ID number must be 17 digits followed by a digit or X"),
    ],
)
def test_parse_id_number_rejects(raw: str, reason: str) -> None:
    with pytest.raises(NormalizationError) as err:
        parse_id_number(raw)
    assert err.value.reason == reason
    assert raw not in err.value.reason  # ID numbers are sensitive; reasons never echo them


# --- addresses --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("广东省深圳市南山区科技园路1号", Address("广东省", "深圳市", "南山区", "科技园路1号")),
        ("广东深圳南山区科技园路1号", Address("广东省", "深圳市", "南山区", "科技园路1号")),
        ("深圳市南山区科技园路1号", Address("广东省", "深圳市", "南山区", "科技园路1号")),
        (
            "广东省 深圳市 南山区 粤海街道 科技园路1号 (518000)",
            Address("广东省", "深圳市", "南山区", "粤海街道 科技园路1号"),
        ),
        ("广东省,深圳市,南山区,科技园路1号（518000）", Address("广东省", "深圳市", "南山区", "科技园路1号")),
        ("广东 深圳 南山 粤海街道", Address("广东省", "深圳市", "南山区", "粤海街道")),
        ("廣東省深圳市南山區科技園路1號", Address("广东省", "深圳市", "南山区", "科技园路1号")),
        ("北京市朝阳区建国路88号", Address("北京市", "北京市", "朝阳区", "建国路88号")),
        ("北京朝阳区建国路88号", Address("北京市", "北京市", "朝阳区", "建国路88号")),
        ("北京 北京市 朝阳区 建国路88号", Address("北京市", "北京市", "朝阳区", "建国路88号")),
        ("上海市市辖区黄浦区南京东路1号", Address("上海市", "上海市", "黄浦区", "南京东路1号")),
        ("重庆市万州区白岩路1号", Address("重庆市", "重庆市", "万州区", "白岩路1号")),
        ("北京市朝阳门外大街1号", Address("北京市", "北京市", None, "朝阳门外大街1号")),
        (
            "内蒙古自治区呼和浩特市新城区中山东路1号",
            Address("内蒙古自治区", "呼和浩特市", "新城区", "中山东路1号"),
        ),
        (
            "內蒙古自治區呼和浩特市新城區中山東路1號",
            Address("内蒙古自治区", "呼和浩特市", "新城区", "中山东路1号"),
        ),
        ("内蒙古呼和浩特市新城区", Address("内蒙古自治区", "呼和浩特市", "新城区", None)),
        (
            "广西壮族自治区南宁市青秀区民族大道100号",
            Address("广西壮族自治区", "南宁市", "青秀区", "民族大道100号"),
        ),
        ("广西南宁青秀区民族大道100号", Address("广西壮族自治区", "南宁市", "青秀区", "民族大道100号")),
        (
            "新疆维吾尔自治区伊犁哈萨克自治州伊宁市解放路1号",
            Address("新疆维吾尔自治区", "伊犁哈萨克自治州", "伊宁市", "解放路1号"),
        ),
        ("吉林延边延吉市光明街1号", Address("吉林省", "延边朝鲜族自治州", "延吉市", "光明街1号")),
        ("吉林市船营区解放东路2号", Address("吉林省", "吉林市", "船营区", "解放东路2号")),
        ("吉林省吉林市船营区解放东路2号", Address("吉林省", "吉林市", "船营区", "解放东路2号")),
        ("湖北省仙桃市沔阳大道1号", Address("湖北省", "仙桃市", None, "沔阳大道1号")),
        ("广东省东莞市长安镇振安路1号", Address("广东省", "东莞市", None, "长安镇振安路1号")),
        ("福建省鼓楼区五四路1号", Address("福建省", "福州市", "鼓楼区", "五四路1号")),
        # Two 鼓楼区 in 江苏 (南京, 徐州): without the city it cannot be told which.
        ("江苏省鼓楼区中山路1号", Address("江苏省", None, None, "鼓楼区中山路1号")),
        ("中国广东省广州市天河区天河路1号", Address("广东省", "广州市", "天河区", "天河路1号")),
        ("山西省阳泉市郊区荫营镇", Address("山西省", "阳泉市", "郊区", "荫营镇")),
        ("香港九龙弥敦道1号", Address("香港特别行政区", None, None, "九龙弥敦道1号")),
        ("吉林省松原市乾安县乾安大街1号", Address("吉林省", "松原市", "乾安县", "乾安大街1号")),
        ("湖北省随州市曾都区沿江大道1号", Address("湖北省", "随州市", "曾都区", "沿江大道1号")),
        ("黑龍江省大興安嶺地區加格達奇區", Address("黑龙江省", "大兴安岭地区", "加格达奇区", None)),
    ],
)
def test_parse_address(raw: str, expected: Address) -> None:
    assert parse_address(raw) == expected


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        ("中山路100号", "中山路100号"),
        ("科技园  路1号", "科技园 路1号"),
        ("Room 301, 1 Main Street", "Room 301, 1 Main Street"),
        ("中国银行大厦", "中国银行大厦"),
    ],
)
def test_parse_address_without_divisions_keeps_everything_as_detail(raw: str, detail: str) -> None:
    assert parse_address(raw) == Address(None, None, None, detail)


def test_every_district_of_the_table_parses_back() -> None:
    tables = address_module._tables()
    names = division_names()
    failures = []
    for code, city in tables.city_of.items():
        province = names[tables.province_of[city]]
        expected = Address(province, names[city], names[code], "幸福路8号")
        got = parse_address(f"{province}{names[city]}{names[code]}幸福路8号")
        if got != expected:
            failures.append((code, got))
    assert len(tables.city_of) > 2800
    assert failures == []


def test_division_names() -> None:
    names = division_names()
    assert names["44"] == "广东省"
    assert names["4403"] == "深圳市"
    assert names["440305"] == "南山区"
    assert names["11"] == "北京市"
    assert names["81"] == "香港特别行政区"
    assert "440303" in names and "110103" not in names  # 崇文区 was merged away in 2010
    names["44"] = "changed"
    assert division_names()["44"] == "广东省"


# --- email ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" Zhang.Wei@QQ.COM ", "Zhang.Wei@qq.com"),
        ("lina@163.com", "lina@163.com"),
        ("ｌｉｎａ＠１６３.ｃｏｍ", "lina@163.com"),
        ("wang_fang+vip@Mail.Example.COM.CN", "wang_fang+vip@mail.example.com.cn"),
    ],
)
def test_normalize_email(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "zhangwei@qq",
        "zhangwei",
        "a@b@c.com",
        "@qq.com",
        "zhang wei@qq.com",
        "a@.com",
    ],
)
def test_normalize_email_rejects(raw: str) -> None:
    with pytest.raises(NormalizationError) as err:
        normalize_email(raw)
    assert err.value.reason == "not an email address"


# --- money and integers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("199", 19900),
        ("199.00", 19900),
        ("199.9", 19990),
        ("0.01", 1),
        ("0", 0),
        ("¥1,299.50", 129950),
        ("￥1,299.50", 129950),
        ("1299.5元", 129950),
        ("１２９９.５", 129950),
        ("1,234,567.89", 123456789),
        ("-10.00", -1000),
        ("¥-10.00", -1000),
        ("-¥10", -1000),
        ("RMB 12", 1200),
        ('="88.80"', 8880),
        ("0.29", 29),
    ],
)
def test_parse_amount_fen(raw: str, expected: int) -> None:
    assert parse_amount_fen(raw) == expected


def test_parse_amount_fen_rejects_sub_fen_precision() -> None:
    with pytest.raises(NormalizationError) as err:
        parse_amount_fen("1.234")
    assert err.value.reason == "more than 2 decimals in an amount of money: '1.234'"


@pytest.mark.parametrize("raw", ["abc", "1,23.00", "12,34", "1.2.3", "--5", "-¥-5", "1e3", "NaN", "¥"])
def test_parse_amount_fen_rejects(raw: str) -> None:
    with pytest.raises(NormalizationError) as err:
        parse_amount_fen(raw)
    assert err.value.reason == f"not an amount of money: {raw!r}"


@given(st.integers(min_value=-(10**12), max_value=10**12), st.booleans(), st.booleans())
def test_property_amount_round_trips_fen(fen: int, thousands: bool, symbol: bool) -> None:
    yuan, cents = divmod(abs(fen), 100)
    body = f"{yuan:,}" if thousands else str(yuan)
    text = f"{'-' if fen < 0 else ''}{'¥' if symbol else ''}{body}.{cents:02d}"
    assert parse_amount_fen(text) == fen


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1,234", 1234),
        (" 12 ", 12),
        ("12.0", 12),
        ("12.00", 12),
        ("-3", -3),
        ("+7", 7),
        ("１２", 12),
        ("0", 0),
    ],
)
def test_parse_int(raw: str, expected: int) -> None:
    assert parse_int(raw) == expected


def test_parse_int_rejects_fractions() -> None:
    with pytest.raises(NormalizationError) as err:
        parse_int("12.5")
    assert err.value.reason == "not a whole number: '12.5'"


@pytest.mark.parametrize("raw", ["twelve", "1e3", "12,34", "1 234", "¥12"])
def test_parse_int_rejects(raw: str) -> None:
    with pytest.raises(NormalizationError) as err:
        parse_int(raw)
    assert err.value.reason == f"not an integer: {raw!r}"
