"""Rows of each channel file for one person, with the noise real exports carry.

Every row goes out through ``emit(sink, row, person_id, noise, identities)``; the caller owns the
files, the truth and the record budget. ``noise`` lists (column, noise kind, clean value) so the
truth says exactly what was spoiled; ``identities`` lists (source, kind, value, person_id) with the
value normalised as an importer would (phones: 11 digits; ids as written).

Conventions per file (a deviation from them is recorded as noise):

* ``pos_direct``: gender 男/女, dates ``2024-01-02``, phones 11 digits.
* ``pos_franchise``: gender 1/2 (1 = male), dates ``2024/1/2`` (``2024年1月2日`` and ISO are noise).
* ``pos_counter``: gender M/F, dates ``20240102``.
* ``miniprogram``: gender 男/女, dates ISO, phones clean (WeChat hands them over), often absent.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import cache

from datong.demo.org import City, Store
from datong.demo.pools import NameForm

Noise = list[tuple[str, str, str]]
Ident = tuple[str, str, str, str]
Emit = Callable[[str, "list[str] | str", str, Noise, list[Ident]], bool]

TMALL_COLUMNS = (
    "订单编号", "买家会员名", "买家支付宝账号", "买家应付货款", "买家应付邮费", "买家支付积分", "总金额",
    "返点积分", "买家实际支付金额", "买家实际支付积分", "订单状态", "买家留言", "收货人姓名", "收货地址",
    "运送方式", "联系电话", "联系手机", "订单创建时间", "订单付款时间", "宝贝标题", "宝贝种类", "物流单号",
    "物流公司", "订单备注", "宝贝总数量", "店铺Id", "店铺名称", "订单关闭原因", "卖家服务费", "是否手机订单",
    "分阶段订单信息", "特权订金订单id", "是否上传合同照片", "是否上传小票", "是否代付", "定金排名",
    "修改后的sku", "修改后的收货地址", "异常信息", "天猫卡券抵扣", "集分宝抵扣", "是否是O2O交易",
)  # fmt: skip
JD_COLUMNS = (
    "订单号", "商品ID", "商品名称", "订购数量", "支付方式", "下单时间", "京东价", "订单金额", "结算金额",
    "余额支付", "应付金额", "订单状态", "订单类型", "下单帐号", "客户姓名", "客户地址", "联系电话",
    "订单备注", "发票类型", "发票抬头", "发票内容", "商家备注", "商家备注等级（等级1-5为由高到低）",
    "运费金额", "付款确认时间", "增值税发票", "货号", "订单完成时间", "订单来源", "订单渠道",
)  # fmt: skip
MINIPROGRAM_COLUMNS = ("openid", "unionid", "phone", "nickname", "name", "gender", "birthday",
                       "registered_at")  # fmt: skip
POS_COLUMNS = {
    "pos_direct": ("会员卡号", "姓名", "手机号", "性别", "生日", "开卡门店", "开卡时间", "积分余额", "地址"),
    "pos_franchise": ("卡号", "会员姓名", "联系电话", "性别", "出生日期", "所属门店", "注册时间", "积分"),
    # The counters' CRM: other names again, still ones the POS importer knows without a mapping.
    "pos_counter": ("会员号", "姓名", "手机号码", "性别", "生日", "所属门店", "入会时间", "可用积分",
                    "会员等级"),
}  # fmt: skip

# Rates of noise and of hard cases; the generator's docstring and the report quote these.
RATES = {
    "name_traditional": 0.02,  # 張偉 for 张伟
    "name_homophone": 0.015,  # 章伟 for 张伟
    "name_title": 0.03,  # 张女士 on a Tmall receiver
    "name_missing": 0.03,
    "phone_format": 0.08,  # +86 138 1234 5678, 86-…, 0086…, 138-1234-5678
    "phone_fullwidth": 0.01,
    "phone_invalid": 0.003,
    "phone_missing": 0.02,
    "date_format": 0.05,  # in files whose convention is ISO
    "date_impossible": 0.002,
    "gender_format": 0.04,
    "amount_invalid": 0.001,
    "tmall_masked_phone": 0.30,
    "jd_masked_phone": 0.40,
    "tmall_gift": 0.08,
    "jd_gift": 0.05,
    "wechat_unionid": 0.85,
    "miniprogram_unionid": 0.95,
}
_GENDER_STYLES = (("男", "女"), ("1", "2"), ("M", "F"))  # indexed by male/female below
FULLWIDTH = str.maketrans("0123456789 ", "０１２３４５６７８９\u3000")


def csv_line(cells: list[str] | tuple[str, ...]) -> str:
    """One CSV line without its end. Joining is several times faster than ``csv.writer``; the
    writer is used only when a cell holds a comma or a quote (the commas count tells)."""
    line = ",".join(cells)
    if line.count(",") != len(cells) - 1 or '"' in line or "\n" in line:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="").writerow(cells)
        line = buf.getvalue()
    return line


@cache  # amounts repeat (a few dozen prices): a dict hit is cheaper than formatting
def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def fmt_date(y: int, m: int, d: int, style: int) -> str:
    """0: ``2024-01-02``, 1: ``2024/1/2``, 2: ``20240102``, 3: ``2024年1月2日``."""
    if style == 0:
        return f"{y}-{m:02d}-{d:02d}"
    if style == 1:
        return f"{y}/{m}/{d}"
    if style == 2:
        return f"{y}{m:02d}{d:02d}"
    return f"{y}年{m}月{d}日"


def phone_variant(phone: str, k: int) -> str:
    """The ways people and systems write one mobile number."""
    a, b, c = phone[:3], phone[3:7], phone[7:]
    return (
        f"+86 {a} {b} {c}",
        f"86-{phone}",
        f"0086{phone}",
        f"{a}-{b}-{c}",
        f"{a} {b} {c}",
        f"+86{phone}",
    )[k % 6]


@dataclass(slots=True)
class Person:
    pid: str
    idx: int
    female: bool
    surname: NameForm
    given: NameForm
    birthday: int  # date ordinal
    phone: str
    city: City
    district: str
    address: str  # detail line after province, city and district
    channels: frozenset[str]
    new_phone: str | None = None  # changed phone: the mini-program knows only this one
    unionid: str | None = None
    phone_owner: Person | None = None  # household: this person's card carries the owner's phone
    home_store: Store | None = None  # household: both hold a card at this store

    @property
    def name(self) -> str:
        return self.surname.text + self.given.text


class Noiser:
    """Spoils a value at the rates above and says how; one ``random()`` per decision."""

    def __init__(self, rnd: Callable[[], float]) -> None:
        self._rnd = rnd

    def name(self, p: Person, field: str, noise: Noise, *, missing: float = 0.0, title: float = 0.0) -> str:
        clean = p.name
        r = self._rnd()
        if r < missing:
            noise.append((field, "name_missing", clean))
            return ""
        r -= missing
        if r < RATES["name_traditional"]:
            trad = p.surname.trad + p.given.trad
            if trad != clean:
                noise.append((field, "name_traditional", clean))
                return trad
            return clean
        r -= RATES["name_traditional"]
        if r < RATES["name_homophone"]:
            # 章伟 for 张伟 or 张炜 for 张伟: whichever part has a homophone in the pools.
            if p.surname.homo and (not p.given.homo or r < RATES["name_homophone"] / 2):
                homo: str | None = p.surname.homo + p.given.text
            elif p.given.homo:
                homo = p.surname.text + p.given.homo
            else:
                homo = None
            if homo:
                noise.append((field, "name_homophone", clean))
                return homo
            return clean
        r -= RATES["name_homophone"]
        if r < title:
            noise.append((field, "name_title", clean))
            return p.surname.text + ("女士" if p.female else "先生")
        return clean

    def phone(self, phone: str, field: str, noise: Noise) -> tuple[str, bool]:
        """The phone as written and whether an importer can read it (False: no phone identity)."""
        r = self._rnd()
        if r < RATES["phone_missing"]:
            noise.append((field, "phone_missing", phone))
            return "", False
        r -= RATES["phone_missing"]
        if r < RATES["phone_invalid"]:
            noise.append((field, "phone_invalid", phone))
            # A digit lost or doubled while typing: 10 or 12 digits.
            return (phone[:-1] if r < RATES["phone_invalid"] / 2 else phone + phone[-1]), False
        r -= RATES["phone_invalid"]
        if r < RATES["phone_fullwidth"]:
            noise.append((field, "phone_fullwidth", phone))
            spaced = f"{phone[:3]}\u3000{phone[3:7]}\u3000{phone[7:]}" if r < 0.005 else phone
            return spaced.translate(FULLWIDTH), True
        r -= RATES["phone_fullwidth"]
        if r < RATES["phone_format"]:
            noise.append((field, "phone_format", phone))
            return phone_variant(phone, int(r * 1000)), True
        return phone, True

    def date(self, d: int, field: str, noise: Noise, *, style: int, alt: float, missing: float) -> str:
        """``style`` is the file's convention (see :func:`fmt_date`); ``alt`` the rate of the others."""
        day = date.fromordinal(d)
        r = self._rnd()
        if r < missing:
            noise.append((field, "date_missing", day.isoformat()))
            return ""
        r -= missing
        if r < RATES["date_impossible"]:
            noise.append((field, "date_impossible", day.isoformat()))
            # 2月30日 or a 13th month: a typo no calendar accepts.
            return fmt_date(day.year, 2, 30, style) if r < 0.001 else fmt_date(day.year, 13, day.day, style)
        r -= RATES["date_impossible"]
        if r < alt:
            other = (style + 1 + int(r * 997) % 3) % 4
            noise.append((field, "date_format", day.isoformat()))
            return fmt_date(day.year, day.month, day.day, other)
        return fmt_date(day.year, day.month, day.day, style)

    def gender(self, female: bool, field: str, noise: Noise, *, style: int) -> str:
        r = self._rnd()
        if r < RATES["gender_format"]:
            other = (style + 1 + int(r * 1000) % 2) % 3
            noise.append((field, "gender_format", "女" if female else "男"))
            return _GENDER_STYLES[other][female]
        return _GENDER_STYLES[style][female]

    def amount(self, fen: int, field: str, noise: Noise) -> str:
        if self._rnd() < RATES["amount_invalid"]:
            noise.append((field, "amount_invalid", yuan(fen)))
            return "abc"
        return yuan(fen)
