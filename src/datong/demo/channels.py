"""One person's rows in each channel: Tmall orders, JD order lines, WeChat fan, mini-program member, cards.

Identity values are unique by construction, never by a lookup table (memory must stay flat): nicks
and pins embed the person's index through a permutation, openids and unionids carry 138 random bits,
card and order numbers come from counters.
"""

from __future__ import annotations

import random
from bisect import bisect
from datetime import date
from functools import cache
from itertools import accumulate
from json.encoder import encode_basestring

from datong.demo.org import CITIES, TMALL_SHOP, City, Org, Store
from datong.demo.pools import Phones, Pools, random_token
from datong.demo.rows import POS_COLUMNS, RATES, Emit, Ident, Noise, Noiser, Person, csv_line, yuan

_BASE = date(2015, 1, 1).toordinal()  # day 0 of every timestamp below
_ORDERS_FROM, _UNTIL = date(2024, 4, 1).toordinal() - _BASE, date(2026, 3, 31).toordinal() - _BASE
_WECHAT_PROFILE_END = date(2021, 12, 27).toordinal() - _BASE  # after it user/info omits nickname, sex, city
_BEIJING_EPOCH = (date(1970, 1, 1).toordinal() - _BASE) * 86400 + 8 * 3600
# company, waybill prefix, digits after the prefix
_COURIERS = (("顺丰速运", "SF", 12), ("中通快递", "7", 13), ("圆通速递", "YT", 13), ("韵达快递", "43", 11))
_SCENES = (
    ("ADD_SCENE_QR_CODE", 45), ("ADD_SCENE_SEARCH", 20), ("ADD_SCENE_PROFILE_CARD", 10),
    ("ADD_SCENE_ARTICLE", 0), ("ADD_SCENE_WECHAT_ADVERTISEMENT", 8), ("ADD_SCENE_PAID", 7),
    ("ADD_SCENE_OTHERS", 8), ("ADD_SCENE_ACCOUNT_MIGRATION", 2),
)  # fmt: skip
_SCENE_NAMES = [s for s, w in _SCENES if w]
_SCENE_CUM = list(accumulate(w for _, w in _SCENES if w))
# Shoppers buy in the evening far more than at dawn: relative weight of each hour of the day.
_HOUR_WEIGHTS = (4, 2, 1, 1, 1, 1, 2, 4, 8, 12, 14, 14, 16, 14, 13, 13, 13, 14, 16, 20, 26, 30, 26, 12)
_HOURS = [h for h, w in enumerate(_HOUR_WEIGHTS) for _ in range(w)]
_TAG_LISTS = ("[]", "[]", "[]", "[]", "[]", "[100]", "[101]", "[102]", "[103]", "[100,101]", "[101,103]")
_json_str = encode_basestring  # a JSON string literal, non-ASCII kept as is (C implementation)
_CITY_CUM = list(accumulate(c.weight for c in CITIES))
_CARD_PREFIX = {"pos_direct": ("YS", 10, 2_100_000_000), "pos_franchise": ("8826", 9, 100_000_000),
                "pos_counter": ("C", 9, 300_000_000)}  # fmt: skip


def _cum_pick(r: float, cum: tuple[float, ...]) -> int:
    """1-based count drawn from cumulative probabilities."""
    return bisect(cum, r) + 1


_ORDERS_PER_BUYER = (0.70, 0.88, 0.95, 0.98, 1.0)
_JD_ORDERS, _JD_LINES = (0.75, 0.92, 1.0), (0.75, 0.93, 1.0)
_CARDS = (0.80, 0.95, 1.0)


@cache
def _tables() -> tuple[list[str], list[str]]:
    """Day strings (with the space after) from 2015 on, and every second of the day as HH:MM:SS."""
    days = [date.fromordinal(_BASE + i).isoformat() + " " for i in range(_UNTIL + 400)]
    return days, [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400)]


# Per chunk of people, each counter gets its own stretch (far more than a chunk can use), so chunks
# generated apart, in any order, never hand out the same order or card number.
_STRIDE = {"tmall19": 10**10, "tmall18": 10**9, "jd": 10**8, "card": 50_000, "gift": 100_000}


class Channels:
    def __init__(
        self, rng: random.Random, pools: Pools, phones: Phones, org: Org, emit: Emit, chunk: int
    ) -> None:
        self.rng, self.pools, self.phones, self.emit = rng, pools, phones, emit
        self.noiser = Noiser(rng.random)
        self.days, self.clock = _tables()
        self.exportable = [s for stores in org.stores_by_city.values() for s in stores]
        self.org = org
        self.guides = [g["code"] for s in org.doc["stores"] for g in s["guides"]]
        self.orders = 0
        self.order_lines = 0
        self.stopped = False  # the record budget is spent: write nothing more
        self._gift_seq = chunk * _STRIDE["gift"]
        self._tmall19 = 2890 * 10**15 + 10**14 + chunk * _STRIDE["tmall19"]
        self._tmall18 = 2890 * 10**14 + 10**13 + chunk * _STRIDE["tmall18"]
        self._jd = 280_000_000_000 + chunk * _STRIDE["jd"]
        self._cards = {src: start + chunk * _STRIDE["card"] for src, (_, _, start) in _CARD_PREFIX.items()}

    # --- small helpers -------------------------------------------------------------------------
    def ts(self, day: int, secs: int) -> str:
        if secs >= 86400:
            day, secs = day + secs // 86400, secs % 86400
        return self.days[day] + self.clock[secs]  # two table lookups: strftime per row is too slow

    def _when(self, start: int) -> tuple[int, int]:
        rnd = self.rng.random
        return start + int(rnd() * (_UNTIL - start + 1)), _HOURS[int(rnd() * len(_HOURS))] * 3600 + int(
            rnd() * 3600
        )

    def random_city(self) -> City:
        return CITIES[bisect(_CITY_CUM, self.rng.random() * _CITY_CUM[-1])]

    def _stranger(self) -> tuple[str, str, City, str, str]:
        """A gift's receiver: someone outside the member base (phones from their own entity range)."""
        rng, pools = self.rng, self.pools
        self._gift_seq += 1
        given = rng.choice(pools.female if rng.random() < 0.6 else pools.male)
        city = self.random_city()
        return (
            rng.choice(pools.surnames).text + given.text,
            self.phones.phone(self._gift_seq * 4 + 2),
            city,
            rng.choice(city.districts)[0],
            pools.address(rng),
        )

    def _put(self, sink: str, row: list[str] | str, pid: str, noise: Noise, ids: list[Ident]) -> bool:
        ok = self.emit(sink, row, pid, noise, ids)
        self.stopped = not ok
        return ok

    def _unique(self, p: Person) -> int:
        return self.phones.permute(p.idx)  # a bijection on 0..10^8: unique per person

    # --- channels ------------------------------------------------------------------------------
    def person(self, p: Person) -> None:
        """Write every row of ``p`` (until the budget, if any, is spent)."""
        for channel in ("pos", "miniprogram", "wechat", "tmall", "jd"):
            if channel in p.channels and not self.stopped:
                getattr(self, channel)(p)

    def tmall(self, p: Person) -> None:
        rng, rnd, noiser = self.rng, self.rng.random, self.noiser
        k, r = self._unique(p), rnd()
        if r < 0.35:
            nick = f"tb{k:010d}"
        elif r < 0.65:
            nick = f"{p.surname.pinyin}{p.given.pinyin}{k}"
        elif r < 0.85:
            nick = f"{rng.choice(self.pools.nick_words)}{k}"
        else:
            nick = f"t_15{k:011d}_{rng.randint(10, 99)}"
        ids: list[Ident] = [("tmall", "nick", nick, p.pid)]
        alipay = (
            f"{p.phone[:3]}****{p.phone[7:]}"
            if r < 0.5
            else (f"{p.surname.pinyin[:3]}***@163.com" if r < 0.7 else "")
        )
        for _ in range(_cum_pick(rnd(), _ORDERS_PER_BUYER)):
            noise: Noise = []
            prod = rng.choice(self.pools.products)
            qty = 1 if rnd() < 0.85 else 2
            goods = prod.price_fen * qty
            post = 0 if rnd() < 0.9 else 1000
            coupon = 2000 if rnd() < 0.1 and goods > 5000 else 0
            day, secs = self._when(_ORDERS_FROM)
            r = rnd()
            if r < 0.78:
                status, paid, shipped, reason = "交易成功", True, True, "订单未关闭"
            elif r < 0.87:
                paid = r < 0.825
                status, shipped, reason = "交易关闭", False, ("退款" if paid else "买家未付款")
            elif r < 0.96:
                status, paid, shipped, reason = "卖家已发货，等待买家确认", True, True, "订单未关闭"
            else:
                status, paid, shipped, reason = "等待买家付款", False, False, "订单未关闭"
            if rnd() < RATES["tmall_gift"]:
                name, phone, city, district, detail = self._stranger()
                noise.append(("收货人姓名", "gift_receiver", p.name))
                message = "送朋友的，不要放价格单" if rnd() < 0.3 else ""
            else:
                name = noiser.name(p, "收货人姓名", noise, title=RATES["name_title"])
                phone, city, district, detail = p.phone, p.city, p.district, p.address
                message = "麻烦尽快发货，谢谢" if rnd() < 0.05 else ""
            if rnd() < RATES["tmall_masked_phone"]:
                noise.append(("联系手机", "masked_phone", phone))
                phone = f"{phone[:3]}****{phone[7:]}"
            courier, prefix, digits = rng.choice(_COURIERS)
            if rnd() < 0.6:
                self._tmall19 += rng.randint(1, 99_999)
                order_no = self._tmall19
            else:
                self._tmall18 += rng.randint(1, 9_999)
                order_no = self._tmall18
            province = city.province if city.province != city.name else city.short_province
            row = [
                nick, alipay, yuan(goods), yuan(post), "0", yuan(goods + post),
                str((goods + post) // 100) if paid else "0",
                noiser.amount(goods + post - coupon, "买家实际支付金额", noise) if paid else "0.00",
                "0", status, message, name, f"{province} {city.name} {district} {detail}({city.postcode})",
                "快递", "", f"'{phone}", self.ts(day, secs),
                self.ts(day, secs + rng.randint(20, 900)) if paid else "",
                prod.title, "1",
                f"{prefix}{rng.randrange(10**digits):0{digits}d}" if shipped else "",
                courier if shipped else "", "", str(qty), TMALL_SHOP[0], TMALL_SHOP[1], reason, "0.00",
                "手机订单" if rnd() < 0.85 else "", "", "", "否", "否", "否", "", "", "", "", yuan(coupon),
                "0.00", "",
            ]  # fmt: skip
            # The export writes the guard bare (="2890…"), which a CSV writer would quote.
            if not self._put("tmall", f'="{order_no}",{csv_line(row)}', p.pid, noise, ids):
                return
            self.orders += 1
            self.order_lines += 1

    def jd(self, p: Person) -> None:
        rng, rnd, noiser = self.rng, self.rng.random, self.noiser
        k = self._unique(p)
        r = rnd()
        if r < 0.5:
            pin = f"jd_{(k * 2654435761) % 16**13:013x}"  # odd multiplier mod 2^52: still a bijection
        elif r < 0.8:
            pin = f"{p.surname.pinyin}{p.given.pinyin}_{k}"
        else:
            pin = f"{rng.choice(self.pools.nick_words)}{k}"
        ids: list[Ident] = [("jd", "pin", pin, p.pid)]
        for _ in range(_cum_pick(rnd(), _JD_ORDERS)):
            self._jd += rng.randint(1, 5000)
            day, secs = self._when(_ORDERS_FROM)
            lines = [(rng.choice(self.pools.products), 1 if rnd() < 0.9 else 2)
                     for _ in range(_cum_pick(rnd(), _JD_LINES))]  # fmt: skip
            total = sum(prod.price_fen * qty for prod, qty in lines)
            r = rnd()
            status = (
                "完成"
                if r < 0.85
                else ("已取消" if r < 0.91 else ("等待确认收货" if r < 0.97 else "等待出库"))
            )
            base_noise: Noise = []
            if rnd() < RATES["jd_gift"]:
                name, phone, city, district, detail = self._stranger()
                base_noise.append(("客户姓名", "gift_receiver", p.name))
            else:
                name = noiser.name(p, "客户姓名", base_noise)
                phone, city, district, detail = p.phone, p.city, p.district, p.address
            if rnd() < RATES["jd_masked_phone"]:
                base_noise.append(("联系电话", "masked_phone", phone))
                phone = f"{phone[:3]}****{phone[7:]}"
            company = rng.choice(self.pools.companies) if rnd() < 0.1 else "个人"
            source = rng.choice(("京东APP", "京东APP", "微信小程序", "PC商城"))
            settled = total - (1000 if total > 20000 and rnd() < 0.2 else 0)
            for prod, qty in lines:
                noise = list(base_noise)
                row = [
                    str(self._jd), prod.jd_id, prod.title, str(qty),
                    "在线支付" if rnd() < 0.97 else "货到付款", self.ts(day, secs), yuan(prod.price_fen),
                    noiser.amount(total, "订单金额", noise), yuan(settled),
                    "0.00", yuan(settled), status, "普通订单", pin, name,
                    f"{city.short_province}{city.name}{district}{detail}", phone, "",
                    "电子发票" if rnd() < 0.6 else "不开发票", company, "明细", "", "", "0.00",
                    self.ts(day, secs + 30), "否", prod.sku,
                    self.ts(day + rng.randint(2, 6), secs) if status == "完成" else "", source, "京东商城",
                ]  # fmt: skip
                if not self._put("jd", row, p.pid, noise, ids):
                    return
                self.order_lines += 1
            self.orders += 1

    def _unionid(self, p: Person) -> str:
        if p.unionid is None:
            p.unionid = "oU2Xm" + random_token(self.rng, 23)
        return p.unionid

    def wechat(self, p: Person) -> None:
        rng, rnd = self.rng, self.rng.random
        openid = "o6_bm" + random_token(rng, 23)
        ids: list[Ident] = [("wechat", "openid", openid, p.pid)]
        unionid = self._unionid(p) if rnd() < RATES["wechat_unionid"] else None
        if unionid:
            ids.append(("wechat", "unionid", unionid, p.pid))
        union = f',"unionid":"{unionid}"' if unionid else ""
        if rnd() < 0.06:  # unsubscribed: user/info returns only the ids
            self._put("wechat", f'{{"subscribe":0,"openid":"{openid}"{union}}}', p.pid, [], ids)
            return
        day, secs = self._when(date(2017, 1, 1).toordinal() - _BASE)
        if day < _WECHAT_PROFILE_END:
            r = rnd()
            nickname = (rng.choice(self.pools.nick_words) if r < 0.5 else
                        ("小" + p.given.text[-1] if r < 0.8 else p.name))  # fmt: skip
            if rnd() < 0.2:
                nickname += rng.choice(self.pools.emoji)
            city = p.city
            profile = (f'"nickname":{_json_str(nickname)},"sex":{2 if p.female else 1},'
                       f'"language":"{"zh_CN" if rnd() < 0.97 else "en"}","city":"{city.short}",'
                       f'"province":"{city.short_province}","country":"中国"')  # fmt: skip
        else:  # since 27 Dec 2021 user/info no longer returns these
            profile = '"nickname":"","sex":0,"language":"zh_CN","city":"","province":"","country":""'
        scene = _SCENE_NAMES[bisect(_SCENE_CUM, rnd() * _SCENE_CUM[-1])]
        by_guide = scene == "ADD_SCENE_QR_CODE"
        remark = _json_str(f"{p.name} VIP") if rnd() < 0.02 else '""'
        qr_scene = rng.randint(1, 100000) if by_guide and rnd() < 0.3 else 0
        qr_str = f"guide:{rng.choice(self.guides)}" if by_guide else ""
        # Written by hand, not json.dumps: a third of the channel's time went to building dicts.
        line = (
            f'{{"subscribe":1,"openid":"{openid}",{profile},"headimgurl":"",'
            f'"subscribe_time":{day * 86400 + secs - _BEIJING_EPOCH}{union},"remark":{remark},"groupid":0,'
            f'"tagid_list":{rng.choice(_TAG_LISTS)},"subscribe_scene":"{scene}","qr_scene":{qr_scene},'
            f'"qr_scene_str":"{qr_str}"}}'
        )
        self._put("wechat", line, p.pid, [], ids)

    def miniprogram(self, p: Person) -> None:
        rng, rnd, noiser = self.rng, self.rng.random, self.noiser
        noise: Noise = []
        openid = "oQk9d" + random_token(rng, 23)
        ids: list[Ident] = [("miniprogram", "openid", openid, p.pid)]
        unionid = self._unionid(p) if rnd() < RATES["miniprogram_unionid"] else ""
        if unionid:
            ids.append(("miniprogram", "unionid", unionid, p.pid))
        phone = p.new_phone or p.phone
        if rnd() < 0.9:  # the rest never tapped "authorise phone number"
            ids.append(("miniprogram", "phone", phone, p.pid))
        else:
            noise.append(("phone", "phone_missing", phone))
            phone = ""
        r = rnd()
        nickname = "微信用户" if r < 0.5 else rng.choice(self.pools.nick_words)
        name = noiser.name(p, "name", noise, missing=0.3)
        gender = "" if rnd() < 0.2 else noiser.gender(p.female, "gender", noise, style=0)
        birthday = noiser.date(p.birthday, "birthday", noise, style=0, alt=RATES["date_format"], missing=0.4)
        day, secs = self._when(date(2020, 6, 1).toordinal() - _BASE)
        row = [openid, unionid, phone, nickname, name, gender, birthday, self.ts(day, secs)]
        self._put("miniprogram", row, p.pid, noise, ids)

    def pos(self, p: Person) -> None:
        rng, rnd, noiser = self.rng, self.rng.random, self.noiser
        stores: list[Store] = [p.home_store] if p.home_store else []
        choices = self.org.stores_by_city.get(p.city.name) or self.exportable
        for _ in range(_cum_pick(rnd(), _CARDS) - len(stores)):
            store = rng.choice(choices)
            if store not in stores:
                stores.append(store)
        for i, store in enumerate(stores):
            src = store.pos_source or ""
            noise: Noise = []
            cols = POS_COLUMNS[src]
            owner = p.phone_owner if i == 0 and p.phone_owner else p
            if owner is not p:  # a household: this card was opened with the partner's phone
                noise.append((cols[2], "shared_phone", owner.pid))
            prefix, digits, _ = _CARD_PREFIX[src]
            self._cards[src] += rng.randint(1, 3)
            card = f"{prefix}{self._cards[src]:0{digits}d}"
            ids: list[Ident] = [(src, "card_no", card, p.pid)]
            phone, ok = noiser.phone(owner.phone, cols[2], noise)
            if ok:
                ids.append((src, "phone", owner.phone, owner.pid))  # the phone is its owner's identity
            name = noiser.name(p, cols[1], noise, missing=RATES["name_missing"])
            day, secs = self._when(date(2016, 1, 1).toordinal() - _BASE)
            points = str(int(rng.expovariate(1 / 800)))
            if src == "pos_direct":
                address = (f"{p.city.province}{p.city.name}{p.district}{p.address}"
                           if p.home_store or rnd() < 0.5 else "")  # fmt: skip
                birthday = noiser.date(
                    p.birthday, cols[4], noise, style=0, alt=RATES["date_format"], missing=0.12
                )
                gender = noiser.gender(p.female, cols[3], noise, style=0)
                row = [card, name, phone, gender, birthday, store.code, self.ts(day, secs), points, address]
            elif src == "pos_franchise":
                birthday = noiser.date(p.birthday, cols[4], noise, style=1, alt=0.3, missing=0.2)
                gender = noiser.gender(p.female, cols[3], noise, style=1)
                reg = self.ts(day, secs)
                y, m, d = int(reg[:4]), int(reg[5:7]), int(reg[8:10])
                row = [card, name, phone, gender, birthday, store.code, f"{y}/{m}/{d} {reg[11:16]}", points]
            else:
                birthday = noiser.date(
                    p.birthday, cols[4], noise, style=2, alt=RATES["date_format"], missing=0.15
                )
                gender = noiser.gender(p.female, cols[3], noise, style=2)
                level = rng.choice(("普卡", "普卡", "银卡", "金卡", "钻石卡"))
                row = [card, name, phone, gender, birthday, store.code, self.days[day][:-1], points, level]
            if not self._put(src, row, p.pid, noise, ids):
                return
