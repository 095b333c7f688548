"""Chinese postal addresses → province / prefecture city / district-county / detail.

The division table is python-stdnum's ``stdnum/cn/loc.dat`` (the GB/T 2260 codes that ``stdnum.cn.ric``
uses for birth places), loaded once. This module is the lowest layer of ``datong.identity``: it also owns
the text helpers that ``rules`` shares with it, so that the import goes one way only.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import opencc

__all__ = ["Address", "division_names", "parse_address", "strip_excel_guard", "to_simplified"]


@dataclass(frozen=True)
class Address:
    province: str | None
    city: str | None
    district: str | None
    detail: str | None  # what is left after the divisions


# ---------------------------------------------------------------------------------------------------------
# Shared text helpers

_EXCEL_FORMULA_RE = re.compile(r'^="(.*)"$', re.DOTALL)


def strip_excel_guard(text: str | None) -> str:
    """Undo the tricks spreadsheets exports use to stop Excel turning IDs into numbers.

    Taobao writes ``="123456"``; other exports prefix an apostrophe. Either way the guard is not data.
    """
    if text is None:
        return ""
    value = text.strip()
    match = _EXCEL_FORMULA_RE.match(value)
    if match:
        value = match.group(1).strip()
    elif value.startswith("'"):
        value = value[1:].strip()
    return value


@lru_cache(maxsize=1)
def _t2s() -> opencc.OpenCC:
    # Building the converter reads OpenCC's dictionaries from disk; do it once per process.
    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional → simplified Chinese; everything else passes through unchanged."""
    if text.isascii():
        # Most phones, emails and Latin names never need the (comparatively slow) converter.
        return text
    try:
        # GB 2312 is the simplified character set. Text that fits in it is left alone, because t2s
        # also "converts" characters that are valid simplified ones: 乾安县 would become 干安县.
        text.encode("gb2312")
        return text
    except UnicodeEncodeError:
        pass
    result: str = _t2s().convert(text)
    return result


# ---------------------------------------------------------------------------------------------------------
# The division table

# Minority names that appear in the names of autonomous prefectures, counties and banners. They are cut off
# to get the short name people actually write (延边朝鲜族自治州 → 延边, 乳源瑶族自治县 → 乳源).
_ETHNIC_TEXT = (
    "蒙古 回 藏 维吾尔 苗 彝 壮 布依 朝鲜 满 侗 瑶 白 土家 哈尼 "
    "哈萨克 傣 黎 傈僳 佤 畲 拉祜 水 东乡 纳西 景颇 柯尔克孜 土 达斡尔 仫佬 "
    "羌 布朗 撒拉 毛南 仡佬 锡伯 普米 塔吉克 怒 鄂温克 保安 裕固 独龙 鄂伦春"
)
_ETHNIC_NAMES = tuple(_ETHNIC_TEXT.split())
_AUTONOMOUS_RE = re.compile(r"(?:族)?自治(?:州|县|旗|区)$")
_SUFFIX_RE = re.compile(r"(?:特别行政区|地区|省|市|区|县|盟|旗)$")
_ENTRY_RE = re.compile(r'^( *)(\d+) county="([^"]*)"')
_PROVINCE_RE = re.compile(r'^(\d{2}) province="([^"]*)"')
_PERIOD_RE = re.compile(r"^\[(\d*)-(\d*)\](.*)$")
# Prefecture-level rows that are bookkeeping, not places (市辖区, 县, 省直辖县级行政单位).
_PLACEHOLDER_RE = re.compile(r"^(?:市辖区|县|.*直辖.*)$")


def _short_name(name: str) -> str | None:
    """The name without its administrative suffix, or None when that would be too short to be safe."""
    if _AUTONOMOUS_RE.search(name):
        cut = min(
            (i for i in range(2, len(name)) for eth in _ETHNIC_NAMES if name.startswith(eth, i)),
            default=None,
        )
        short = name[:cut] if cut is not None else _AUTONOMOUS_RE.sub("", name)
    else:
        short = _SUFFIX_RE.sub("", name)
    return short if len(short) >= 2 and short != name else None


def _current_name(value: str) -> str | None:
    """``[1983-1989]南头区办事处,[1990-]南山区`` → ``南山区``; None when the code is no longer in use."""
    current = None
    for part in value.split(","):
        match = _PERIOD_RE.match(part)
        if match is None:
            current = part
        elif not match.group(2):
            current = match.group(3)
    return current


@dataclass(frozen=True)
class _Tables:
    names: dict[str, str]  # division key → canonical full name
    province_of: dict[str, str]  # city key → province code
    city_of: dict[str, str]  # district code → city key
    provinces: dict[str, str]  # full and short province names → province code
    municipalities: frozenset[str]  # province codes that are also their own city (北京, 上海 ...)
    cities: dict[str, dict[str, str]]  # province code → {full/short name → city key}
    cities_anywhere: dict[str, str]  # full city name → city key, only names that are unique nationwide
    districts: dict[str, dict[str, str]]  # city key → {full name → district code}
    district_short: dict[str, dict[str, str]]  # city key → {short name → district code}
    districts_in_province: dict[str, dict[str, str]]  # province code → {full name → code}, unique only
    max_len: int


def _add_unique(table: dict[str, str], ambiguous: set[str], name: str, key: str) -> None:
    # A name that means two places cannot be resolved without the level above it; forget it entirely.
    if name in ambiguous:
        return
    if name in table and table[name] != key:
        del table[name]
        ambiguous.add(name)
        return
    table[name] = key


@lru_cache(maxsize=1)
def _tables() -> _Tables:
    text = resources.files("stdnum.cn").joinpath("loc.dat").read_text(encoding="utf-8")
    province_codes: list[str] = []
    rows: dict[str, str] = {}  # six-digit code → current name
    province = ""
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        top = _PROVINCE_RE.match(line)
        if top:
            province = top.group(1)
            province_codes.append(province)
            rows[province + "0000"] = to_simplified(top.group(2))
            continue
        entry = _ENTRY_RE.match(line)
        if entry and province:
            name = _current_name(entry.group(3))
            code = province + entry.group(2)
            if name:
                rows[code] = to_simplified(name)  # a few rows are typed in traditional (加格達奇區)
            elif code.endswith("0000"):
                rows.pop(code, None)  # e.g. 香港 before 1997: keep the province line's name

    names: dict[str, str] = {}
    province_of: dict[str, str] = {}
    city_of: dict[str, str] = {}
    provinces: dict[str, str] = {}
    municipalities: set[str] = set()
    cities: dict[str, dict[str, str]] = {}
    cities_anywhere: dict[str, str] = {}
    city_ambiguous: set[str] = set()
    districts: dict[str, dict[str, str]] = {}
    district_short: dict[str, dict[str, str]] = {}
    districts_in_province: dict[str, dict[str, str]] = {}
    province_ambiguous: dict[str, set[str]] = {}

    for code in province_codes:
        name = rows.get(code + "0000")
        if name is None:
            continue
        names[code] = name
        provinces[name] = code
        short = _short_name(name)
        if short:
            provinces[short] = code
        cities[code] = {}
        districts_in_province[code] = {}
        province_ambiguous[code] = set()
        if name.endswith("市"):
            # A municipality is its own prefecture: 北京市 北京市 朝阳区.
            municipalities.add(code)
            names[code + "00"] = name
            province_of[code + "00"] = code
            districts[code + "00"] = {}
            district_short[code + "00"] = {}

    def add_city(key: str, name: str) -> None:
        if name in cities[key[:2]]:
            # loc.dat still lists some county-level cities that became prefectures (随州市 429001 and
            # 4213); the prefecture, seen first in code order, is the one that has districts.
            return
        names[key] = name
        province_of[key] = key[:2]
        districts.setdefault(key, {})
        district_short.setdefault(key, {})
        cities[key[:2]][name] = key
        short = _short_name(name)
        if short:
            cities[key[:2]].setdefault(short, key)
        _add_unique(cities_anywhere, city_ambiguous, name, key)

    for code, name in sorted(rows.items()):
        prov, pref, county = code[:2], code[2:4], code[4:]
        if prov not in names or pref == "00" or _PLACEHOLDER_RE.match(name):
            continue
        if prov in municipalities:
            parent: str | None = prov + "00"
        elif county == "00":
            add_city(code[:4], name)
            continue
        elif prov + pref in names:
            parent = prov + pref
        elif _PLACEHOLDER_RE.match(rows.get(code[:4] + "00", "")):
            # Counties governed directly by the province (仙桃市, 济源市, 五指山市) fill the city slot,
            # as Tmall and JD write them.
            add_city(code, name)
            continue
        else:
            parent = None
        if parent is None:
            continue
        names[code] = name
        city_of[code] = parent
        districts[parent][name] = code
        short = _short_name(name)
        if short:
            district_short[parent].setdefault(short, code)
        _add_unique(districts_in_province[prov], province_ambiguous[prov], name, code)

    all_names = [*provinces, *cities_anywhere, *(n for t in cities.values() for n in t)]
    all_names += [n for t in districts.values() for n in t]
    return _Tables(
        names=names,
        province_of=province_of,
        city_of=city_of,
        provinces=provinces,
        municipalities=frozenset(municipalities),
        cities=cities,
        cities_anywhere=cities_anywhere,
        districts=districts,
        district_short=district_short,
        districts_in_province=districts_in_province,
        max_len=max(len(n) for n in all_names),
    )


def division_names() -> dict[str, str]:
    """Current divisions: code (2 digits province, 4 prefecture, 6 county; 6 for county-level cities
    governed by their province) → canonical full name. A copy, safe to modify."""
    return dict(_tables().names)


# ---------------------------------------------------------------------------------------------------------
# Parsing

_POSTCODE_RE = re.compile(r"\s*\(\s*\d{6}\s*\)\s*$")
_COUNTRY_RE = re.compile(r"^(?:中华人民共和国|中国大陆|中国)\s*")
_SEPARATORS = frozenset(" \t\n\r,;、/|")
_SPACES_RE = re.compile(r"\s+")

# One way to read the start of an address: (province code, city key, district code, explicit levels, end).
_Reading = tuple[str | None, str | None, str | None, int, int]


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _SEPARATORS:
        pos += 1
    return pos


def _matches(
    text: str, pos: int, table: dict[str, str], max_len: int, *, boundary: bool = False
) -> list[tuple[int, str]]:
    """Every name in ``table`` that starts at ``pos``, longest first, as (end, value).

    With ``boundary`` a name only counts when a separator or the end of the text follows it: short names
    like 朝阳 are too often the start of a street (朝阳门外大街) to be trusted otherwise.
    """
    found = []
    for end in range(min(len(text), pos + max_len), pos + 1, -1):
        value = table.get(text[pos:end])
        if value is not None and (not boundary or end == len(text) or text[end] in _SEPARATORS):
            found.append((end, value))
    return found


def _readings(text: str, t: _Tables) -> list[_Reading]:
    readings: list[_Reading] = [(None, None, None, 0, 0)]
    start = _skip(text, 0)
    for p_end, prov in [*_matches(text, start, t.provinces, t.max_len), (start, "")]:
        city_pos = _skip(text, p_end)
        city_options: list[tuple[int, str]] = []
        if prov in t.municipalities:
            # The city is implied; exports sometimes repeat it (北京 北京市) or write 市辖区/县.
            repeat = {name: prov + "00" for name in (t.names[prov], "市辖区", "县")}
            short = _short_name(t.names[prov])
            if short:
                repeat[short] = prov + "00"
            city_options = [*_matches(text, city_pos, repeat, t.max_len), (city_pos, prov + "00")]
        elif prov:
            city_options = [*_matches(text, city_pos, t.cities[prov], t.max_len), (city_pos, "")]
        else:
            # Without a province only full, nationally unique city names count: 中山路 is not 中山市.
            city_options = [*_matches(text, city_pos, t.cities_anywhere, t.max_len), (city_pos, "")]
        for c_end, city in city_options:
            province = prov or (t.province_of[city] if city else "")
            explicit = (1 if p_end > start else 0) + (1 if c_end > city_pos else 0)
            if not province:
                continue
            d_pos = _skip(text, c_end)
            if city:
                options = _matches(text, d_pos, t.districts[city], t.max_len)
                options += _matches(text, d_pos, t.district_short[city], t.max_len, boundary=True)
            else:
                options = _matches(text, d_pos, t.districts_in_province[province], t.max_len)
            for d_end, district in options:
                readings.append((province, city or t.city_of[district], district, explicit + 1, d_end))
            readings.append((province, city or None, None, explicit, c_end))
    return readings


def parse_address(text: str | None) -> Address | None:
    """Split an address as written in a Chinese export. Never raises: unknown parts stay None.

    Divisions come back as canonical full names (广东 → 广东省). Whatever follows them, street and
    house number included, is ``detail``; when no division is recognised all the text is detail.
    """
    value = strip_excel_guard(text)
    if not value:
        return None
    value = to_simplified(unicodedata.normalize("NFKC", value))
    value = _SPACES_RE.sub(" ", _POSTCODE_RE.sub("", value)).strip()
    if not value:
        return None
    body = _COUNTRY_RE.sub("", value)
    t = _tables()
    # Prefer the reading that recognises the most levels, then the one that consumes the most text
    # (吉林市 is the city 吉林市, not the province 吉林 followed by 市).
    province, city, district, explicit, end = max(_readings(body, t), key=lambda r: (r[3], r[4]))
    if explicit == 0:
        return Address(None, None, None, value)
    detail = body[_skip(body, end) :].strip()
    return Address(
        province=t.names[province] if province else None,
        city=t.names[city] if city else None,
        district=t.names[district] if district else None,
        detail=detail or None,
    )
