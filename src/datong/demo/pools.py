"""Precomputed pools the generator samples from with ``random.Random``.

Faker is far too slow to call per row when writing millions of rows, so it is called a few thousand
times up front and its answers (plus our own lists) become pools. Each name carries its variants
once, computed here: the traditional form (OpenCC) and a homophone typo (same pinyin, pypinyin), so
the per-row cost of noise is one list index. Every string is checked against GBK, because the
Tmall export is GBK and a character outside it would make the file unwritable.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from faker import Faker
from opencc import OpenCC
from pypinyin import Style, lazy_pinyin

T = TypeVar("T")

# Mobile prefixes seen on the three carriers; phones are drawn across them.
PHONE_PREFIXES = (
    "130", "131", "132", "133", "134", "135", "136", "137", "138", "139", "147", "150", "151", "152",
    "153", "155", "156", "157", "158", "159", "166", "173", "176", "177", "178", "180", "181", "182",
    "183", "184", "185", "186", "187", "188", "189", "191", "198", "199",
)  # fmt: skip

# Given-name characters beyond Faker's short lists; near-homophones are included on purpose
# (玲/琳/林, 静/婧/晶, 伟/玮/炜) because that is where real typos happen.
_FEMALE_CHARS = "雅婷欣怡梓涵诗琪佳雨思彤可馨悦若晓梦语嘉妍慧静婧晶丽莉俐芳颖艳玲琳凌霞秀燕萍红洁雪淑倩"
_MALE_CHARS = "浩宇子轩俊杰泽博文昊然天明志鹏磊建国伟玮炜强涛鑫宁峰凯斌勇军超辉刚毅晨阳"
_STREETS = (
    "中山路", "人民路", "解放路", "建设路", "和平路", "胜利路", "新华路", "文化路", "长江路", "黄河路",
    "湖滨路", "滨江大道", "工业大道", "科技园路", "学府路", "东风路", "青年路", "花园路", "友谊路",
    "朝阳路", "光明路", "幸福路", "迎宾大道", "体育路", "公园路", "环城南路", "北京路", "南京路",
)  # fmt: skip
_ESTATE_HEAD = (
    "阳光",
    "碧桂园",
    "万科",
    "保利",
    "华润",
    "金地",
    "龙湖",
    "绿地",
    "中海",
    "翠苑",
    "锦绣",
    "幸福",
    "桃源",
)
_ESTATE_TAIL = ("花园", "小区", "家园", "城", "公馆", "苑", "新村", "华庭", "名都")
_NICK_WORDS = (
    "爱吃鱼的猫", "小小酥", "春天的风", "静静", "木子", "向日葵", "追风少年", "简单就好", "晴天", "一只喵",
    "奶茶续命", "咸鱼", "星星", "米粒", "大白", "小太阳", "半夏", "柠檬不萌", "阿狸", "七七",
)  # fmt: skip
_EMOJI = ("🌸", "🍀", "✨", "🐱", "🌙", "💕")
_SEASONS = ("2025春季", "2025夏季", "2025秋季", "2025冬季", "2026春季")
_ITEMS = (
    ("法式碎花连衣裙", 29900), ("纯棉短袖T恤", 9900), ("高腰阔腿牛仔裤", 19900), ("双面羊绒大衣", 129900),
    ("针织开衫", 25900), ("真丝衬衫", 45900), ("休闲西装外套", 39900), ("百褶半身裙", 15900),
    ("轻薄羽绒服", 59900), ("宽松卫衣", 16900), ("冰丝防晒衣", 12900), ("直筒西裤", 22900),
)  # fmt: skip
_STYLES = ("新款女装", "新款男装", "新款", "简约", "韩版")


class FastRandom(random.Random):
    """``random.Random`` whose ``choice``/``randint``/``randrange`` scale one ``random()``.

    The stock ones draw bits until a value fits (rejection sampling, two Python frames), which was
    a third of the generator's time; scaling a 53-bit float is one C call, its bias (n / 2**53)
    is far below anything a demo can show, and the sequence still depends on the seed alone.
    """

    def choice(self, seq: Sequence[T]) -> T:  # type: ignore[override]
        return seq[int(self.random() * len(seq))]

    def randint(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a + 1))

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        if stop is None and step == 1 and 0 < start < 2**50:
            return int(self.random() * start)
        return super().randrange(start, stop, step)


def gbk_ok(text: str) -> bool:
    try:
        text.encode("gbk")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class NameForm:
    text: str
    trad: str  # the traditional form; equal to ``text`` when it has none
    homo: str | None  # one character swapped for a homophone
    pinyin: str  # toneless, joined: "zhangwei"


@dataclass(frozen=True)
class Product:
    sku: str
    title: str
    price_fen: int
    jd_id: str


class Phones:
    """A bijection from an entity number to a mobile number, so phones are unique without a set.

    Entity ``e`` picks the prefix ``e % len(prefixes)`` and its last eight digits through a
    three-round Feistel network on two four-digit halves (a permutation of 0..99,999,999) keyed
    by the seed: consecutive people get unrelated-looking numbers, and no two entities share one.
    """

    def __init__(self, rng: random.Random) -> None:
        self._rounds = [[rng.randrange(10_000) for _ in range(10_000)] for _ in range(3)]

    def permute(self, k: int) -> int:
        left, right = divmod(k % 100_000_000, 10_000)
        for table in self._rounds:
            left, right = right, (left + table[right]) % 10_000
        return left * 10_000 + right

    def phone(self, entity: int) -> str:
        which, k = entity % len(PHONE_PREFIXES), entity // len(PHONE_PREFIXES)
        # Shift by the prefix before permuting: neighbours (other prefixes, same k) must not share
        # their last eight digits. For one prefix, shift-then-permute is still a bijection.
        return f"{PHONE_PREFIXES[which]}{self.permute(k + which * 7_654_321):08d}"


def random_token(rng: random.Random, length: int) -> str:
    """URL-safe base64 characters, as WeChat's openid and unionid tails look."""
    raw = rng.getrandbits(6 * length + 6).to_bytes((6 * length + 13) // 8, "big")
    return base64.urlsafe_b64encode(raw).decode("ascii")[:length]


class Pools:
    def __init__(self, rng: random.Random, seed: int) -> None:
        fake = Faker("zh_CN")
        fake.seed_instance(seed)
        to_trad = OpenCC("s2t").convert  # not kept: Pools travels to worker processes by pickle
        surnames = [fake.last_name() for _ in range(3000)]  # Faker weights them by frequency
        female = [fake.first_name_female() for _ in range(800)]
        male = [fake.first_name_male() for _ in range(800)]
        # Faker's given names are few (and old-fashioned); compose younger two-character ones too.
        female += [rng.choice(_FEMALE_CHARS) + rng.choice(_FEMALE_CHARS) for _ in range(1600)]
        male += [rng.choice(_MALE_CHARS) + rng.choice(_MALE_CHARS) for _ in range(1600)]
        # One pypinyin call per distinct character (a few hundred), not per name: it is slow.
        chars = sorted({ch for text in surnames + female + male for ch in text})  # sets vary by run
        tones = dict(zip(chars, lazy_pinyin(chars, style=Style.TONE3), strict=True))
        plain = dict(zip(chars, lazy_pinyin(chars), strict=True))
        by_sound: dict[str, list[str]] = {}
        for ch in chars:
            by_sound.setdefault(tones[ch], []).append(ch)
        cache: dict[str, NameForm] = {}

        def form(text: str) -> NameForm:
            if text not in cache:
                trad = to_trad(text)
                # Swap the first character that has a same-tone homophone in the pools (章伟 for 张伟).
                homo = None
                for i, ch in enumerate(text):
                    others = [o for o in by_sound[tones[ch]] if o != ch]
                    if others:
                        homo = text[:i] + rng.choice(others) + text[i + 1 :]
                        break
                pinyin = "".join(plain[ch] for ch in text)
                cache[text] = NameForm(text, trad if gbk_ok(trad) else text, homo, pinyin)
            return cache[text]

        self.surnames = [form(t) for t in surnames if gbk_ok(t)]
        self.female = [form(t) for t in female if gbk_ok(t)]
        self.male = [form(t) for t in male if gbk_ok(t)]
        self.streets = list(_STREETS) + [
            s for s in sorted({fake.street_name() for _ in range(60)}) if s.endswith("路") and len(s) > 2
        ]
        self.estates = [h + t for h in _ESTATE_HEAD for t in _ESTATE_TAIL]
        self.nick_words = list(_NICK_WORDS)
        self.emoji = list(_EMOJI)
        self.companies = [c for c in sorted({fake.company() for _ in range(200)}) if gbk_ok(c)]
        self.products = [
            Product(f"YS{n:05d}", f"悦衫{season}{style}{item}", price, str(100012340000 + n * 7919))
            for n, (season, style, (item, price)) in enumerate(
                (rng.choice(_SEASONS), rng.choice(_STYLES), it) for it in _ITEMS * 5
            )
        ]

    def address(self, rng: random.Random) -> str:
        """The detail line of a home address (what follows province, city and district)."""
        r = rng.random
        streets, estates = self.streets, self.estates
        return (
            f"{streets[int(r() * len(streets))]}{int(r() * 999) + 1}号{estates[int(r() * len(estates))]}"
            f"{int(r() * 30) + 1}栋{int(r() * 4) + 1}单元{int(r() * 33) + 1}{int(r() * 8) + 1:02d}室"
        )
