"""The demo brand's organisation and the places its members live (``org.json``).

Schema of ``org.json`` (keys in English snake_case, text in Chinese, UTF-8)::

    {
      "schema_version": 1,
      "tenant":  {"code": "demo", "name": "悦衫服饰"},
      "regions": [{"code": "SC", "name": "华南"}, ...],
      "agents":  [{"code": "A01", "name": "...有限公司", "region_code": "SC",
                   "contact_name": "...", "contact_phone": "13812345678"}, ...],
      "stores":  [{"code": "SZ001", "name": "悦衫 深圳万象城店",
                   "kind": "direct" | "franchise" | "counter",
                   "agent_code": "A01" | null,          # set for franchise stores only
                   "region_code": "SC", "province": "广东省", "city": "深圳市",
                   "district": "罗湖区", "address": "宝安南路1881号华润万象城",
                   "mall": "华润万象城" | null,           # counters always stand in a mall
                   "latitude": 22.54, "longitude": 114.11,
                   "opened_on": "2019-05-01",
                   "pos_source": "pos_direct" | null,   # which member export holds its cards
                   "guides": [{"code": "SZ001-01", "name": "...", "phone": "139..."}]}, ...],
      "shops":   [{"channel": "tmall" | "jd" | "wechat" | "miniprogram",
                   "external_id": "<shop id or appid>", "name": "..."}, ...],
      "pos_sources": [{"code": "pos_direct", "name": "...", "store_kind": "direct",
                       "agent_code": null}, ...]
    }

The store plan is a fixed table (real cities, real districts, plausible malls) so the demo reads
true to anyone who knows those cities; only coordinates jitter, and guides' names and phones vary
with the seed. Coordinates are a district centre plus at most ~900 m, so every store lies inside
its city.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TENANT_CODE = "demo"
BRAND_NAME = "悦衫服饰"
TMALL_SHOP = ("71868423", "悦衫服饰旗舰店")
JD_SHOP = ("10086592", "悦衫服饰京东自营旗舰店")
WECHAT_APPID = "wx5d3c8a71f2e9b604"
MINIPROGRAM_APPID = "wx9e41b07c3d5a2f18"

REGIONS = (("SC", "华南"), ("EC", "华东"), ("NC", "华北"), ("SW", "西南"), ("CC", "华中"))


@dataclass(frozen=True)
class City:
    name: str  # 深圳市
    province: str  # 广东省 (a municipality is its own province)
    short_province: str  # 广东, as WeChat writes it
    postcode: str
    region: str | None  # None: no store there, members live there and buy online
    weight: int  # share of members who live there
    districts: tuple[tuple[str, float, float], ...]  # name, latitude, longitude of its centre

    @property
    def short(self) -> str:
        return self.name.removesuffix("市")


def _c(
    name: str, prov: str, post: str, region: str | None, weight: int, *d: tuple[str, float, float]
) -> City:
    short = prov.removesuffix("省").removesuffix("市")
    return City(name, prov, short, post, region, weight, d)


CITIES: tuple[City, ...] = (
    _c(
        "深圳市",
        "广东省",
        "518000",
        "SC",
        12,
        ("福田区", 22.541, 114.055),
        ("南山区", 22.533, 113.930),
        ("罗湖区", 22.548, 114.131),
        ("宝安区", 22.555, 113.884),
        ("龙岗区", 22.720, 114.247),
    ),
    _c(
        "广州市",
        "广东省",
        "510000",
        "SC",
        11,
        ("天河区", 23.125, 113.361),
        ("越秀区", 23.129, 113.267),
        ("海珠区", 23.084, 113.317),
        ("番禺区", 22.938, 113.384),
    ),
    _c(
        "厦门市",
        "福建省",
        "361000",
        "SC",
        4,
        ("思明区", 24.445, 118.082),
        ("湖里区", 24.513, 118.146),
        ("集美区", 24.576, 118.097),
    ),
    _c(
        "上海市",
        "上海市",
        "200000",
        "EC",
        13,
        ("黄浦区", 31.231, 121.484),
        ("徐汇区", 31.188, 121.437),
        ("浦东新区", 31.221, 121.544),
        ("静安区", 31.229, 121.448),
        ("闵行区", 31.113, 121.382),
    ),
    _c(
        "杭州市",
        "浙江省",
        "310000",
        "EC",
        7,
        ("上城区", 30.242, 120.169),
        ("西湖区", 30.259, 120.130),
        ("拱墅区", 30.320, 120.142),
        ("滨江区", 30.208, 120.211),
    ),
    _c(
        "南京市",
        "江苏省",
        "210000",
        "EC",
        5,
        ("玄武区", 32.048, 118.797),
        ("秦淮区", 32.034, 118.794),
        ("鼓楼区", 32.066, 118.769),
        ("建邺区", 32.004, 118.731),
    ),
    _c(
        "北京市",
        "北京市",
        "100000",
        "NC",
        12,
        ("朝阳区", 39.921, 116.443),
        ("海淀区", 39.959, 116.298),
        ("东城区", 39.928, 116.416),
        ("西城区", 39.912, 116.366),
        ("丰台区", 39.858, 116.287),
    ),
    _c(
        "天津市",
        "天津市",
        "300000",
        "NC",
        4,
        ("和平区", 39.117, 117.195),
        ("南开区", 39.138, 117.150),
        ("河西区", 39.109, 117.223),
    ),
    _c(
        "成都市",
        "四川省",
        "610000",
        "SW",
        7,
        ("锦江区", 30.657, 104.083),
        ("武侯区", 30.642, 104.043),
        ("青羊区", 30.674, 104.062),
        ("成华区", 30.660, 104.101),
    ),
    _c(
        "重庆市",
        "重庆市",
        "400000",
        "SW",
        5,
        ("渝中区", 29.556, 106.569),
        ("江北区", 29.606, 106.574),
        ("九龙坡区", 29.502, 106.511),
    ),
    _c(
        "武汉市",
        "湖北省",
        "430000",
        "CC",
        5,
        ("江汉区", 30.601, 114.270),
        ("武昌区", 30.554, 114.316),
        ("洪山区", 30.500, 114.343),
        ("江岸区", 30.600, 114.309),
    ),
    _c(
        "长沙市",
        "湖南省",
        "410000",
        "CC",
        3,
        ("芙蓉区", 28.185, 113.032),
        ("天心区", 28.114, 112.990),
        ("岳麓区", 28.235, 112.931),
    ),
    # No store: members here only buy online, so their addresses widen what the unifier sees.
    _c("苏州市", "江苏省", "215000", None, 3, ("姑苏区", 31.311, 120.617), ("吴中区", 31.262, 120.632)),
    _c("宁波市", "浙江省", "315000", None, 2, ("海曙区", 29.859, 121.551), ("鄞州区", 29.817, 121.547)),
    _c("东莞市", "广东省", "523000", None, 2, ("南城街道", 23.018, 113.752), ("长安镇", 22.816, 113.804)),
    _c("佛山市", "广东省", "528000", None, 2, ("禅城区", 23.009, 113.122), ("顺德区", 22.805, 113.293)),
    _c("西安市", "陕西省", "710000", None, 2, ("雁塔区", 34.222, 108.948), ("碑林区", 34.257, 108.934)),
    _c("郑州市", "河南省", "450000", None, 2, ("金水区", 34.800, 113.660), ("二七区", 34.724, 113.640)),
    _c("青岛市", "山东省", "266000", None, 1, ("市南区", 36.067, 120.383), ("崂山区", 36.107, 120.469)),
    _c("合肥市", "安徽省", "230000", None, 1, ("蜀山区", 31.851, 117.261), ("包河区", 31.794, 117.310)),
    _c("福州市", "福建省", "350000", None, 1, ("鼓楼区", 26.082, 119.304), ("仓山区", 26.047, 119.320)),
    _c("昆明市", "云南省", "650000", None, 1, ("五华区", 25.043, 102.707), ("官渡区", 25.015, 102.744)),
)
CITY_BY_NAME = {c.name: c for c in CITIES}

# code, city, district, kind, agent, mall (None: a street shop), street address
_STORE_PLAN: tuple[tuple[str, str, str, str, str | None, str | None, str], ...] = (
    ("SZ001", "深圳市", "罗湖区", "direct", None, "华润万象城", "宝安南路1881号"),
    ("SZ002", "深圳市", "南山区", "direct", None, "海岸城", "文心五路33号"),
    ("SZ003", "深圳市", "福田区", "counter", None, "星河COCO Park", "福华三路268号"),
    ("SZ004", "深圳市", "福田区", "direct", None, None, "华强北路1019号"),
    ("SZ005", "深圳市", "宝安区", "franchise", "A01", "壹方城", "新湖路99号"),
    ("SZ006", "深圳市", "龙岗区", "franchise", "A01", None, "龙城大道89号"),
    ("GZ001", "广州市", "天河区", "direct", None, "天河城", "天河路208号"),
    ("GZ002", "广州市", "天河区", "direct", None, "太古汇", "天河路383号"),
    ("GZ003", "广州市", "越秀区", "counter", None, "广百百货", "中山五路219号"),
    ("GZ004", "广州市", "海珠区", "direct", None, None, "江南大道中168号"),
    ("GZ005", "广州市", "番禺区", "franchise", "A01", "番禺万达广场", "汉溪大道东280号"),
    ("XM001", "厦门市", "思明区", "franchise", "A01", None, "中山路步行街112号"),
    ("XM002", "厦门市", "湖里区", "franchise", "A01", "SM城市广场", "嘉禾路399号"),
    ("XM003", "厦门市", "思明区", "counter", None, "厦门万象城", "湖滨东路99号"),
    ("SH001", "上海市", "黄浦区", "direct", None, None, "南京东路580号"),
    ("SH002", "上海市", "静安区", "counter", None, "久光百货", "南京西路1618号"),
    ("SH003", "上海市", "徐汇区", "direct", None, "美罗城", "肇嘉浜路1111号"),
    ("SH004", "上海市", "浦东新区", "counter", None, "第一八佰伴", "张杨路501号"),
    ("SH005", "上海市", "闵行区", "direct", None, "仲盛世界商城", "都市路5001号"),
    ("HZ001", "杭州市", "上城区", "franchise", "A02", "湖滨银泰in77", "延安路258号"),
    ("HZ002", "杭州市", "西湖区", "franchise", "A02", None, "文三路398号"),
    ("HZ003", "杭州市", "拱墅区", "counter", None, "杭州大厦", "武林广场1号"),
    ("HZ004", "杭州市", "滨江区", "franchise", "A02", "星光大道", "江南大道228号"),
    ("NJ001", "南京市", "玄武区", "franchise", "A02", "德基广场", "中山路18号"),
    ("NJ002", "南京市", "秦淮区", "counter", None, "金鹰国际购物中心", "汉中路89号"),
    ("BJ001", "北京市", "朝阳区", "direct", None, "三里屯太古里", "三里屯路19号"),
    ("BJ002", "北京市", "海淀区", "direct", None, "中关村欧美汇", "丹棱街甲1号"),
    ("BJ003", "北京市", "西城区", "counter", None, "西单商场", "西单北大街120号"),
    ("BJ004", "北京市", "东城区", "direct", None, None, "王府井大街255号"),
    ("TJ001", "天津市", "和平区", "franchise", "A03", None, "滨江道208号"),
    ("TJ002", "天津市", "南开区", "counter", None, "天津大悦城", "南门外大街2号"),
    ("CD001", "成都市", "锦江区", "franchise", "A04", None, "春熙路东段28号"),
    ("CD002", "成都市", "锦江区", "franchise", "A04", "远洋太古里", "中纱帽街8号"),
    ("CD003", "成都市", "武侯区", "counter", None, "成都来福士广场", "人民南路四段3号"),
    ("CD004", "成都市", "成华区", "franchise", "A04", None, "建设路55号"),
    ("CQ001", "重庆市", "渝中区", "franchise", "A04", None, "民权路88号"),
    ("CQ002", "重庆市", "江北区", "counter", None, "北城天街", "北城天街8号"),
    ("WH001", "武汉市", "江汉区", "franchise", "A05", None, "江汉路118号"),
    ("WH002", "武汉市", "武昌区", "counter", None, "武商梦时代", "中北路1号"),
    ("CS001", "长沙市", "芙蓉区", "franchise", "A05", "长沙国金中心", "解放西路188号"),
)

# (code, company name, region). A01 runs its own member system: that is the pos_franchise export.
_AGENTS = (
    ("A01", "深圳市悦达服饰有限公司", "SC"),
    ("A02", "杭州衫行商贸有限公司", "EC"),
    ("A03", "天津北辰服饰有限公司", "NC"),
    ("A04", "成都锦绣衣品有限公司", "SW"),
    ("A05", "武汉楚衣商贸有限公司", "CC"),
)

# Member exports from stores: (code, name, which stores' cards it holds).
POS_SOURCES = (
    ("pos_direct", "直营门店POS会员", "direct", None),
    ("pos_franchise", "悦达加盟店会员系统", "franchise", "A01"),
    ("pos_counter", "商场专柜CRM", "counter", None),
)


@dataclass(frozen=True)
class Store:
    code: str
    name: str
    kind: str
    city: City
    district: str
    agent_code: str | None
    pos_source: str | None  # None: a franchisee whose members never reach HQ


@dataclass
class Org:
    doc: dict[str, Any]  # what org.json holds
    stores: list[Store]
    stores_by_city: dict[str, list[Store]]  # only stores whose cards are exported


def _pos_source(kind: str, agent: str | None) -> str | None:
    for code, _name, store_kind, agent_code in POS_SOURCES:
        if store_kind == kind and (agent_code is None or agent_code == agent):
            return code
    return None


def build_org(rng: random.Random, person_name: Callable[[], str], staff_phone: Callable[[], str]) -> Org:
    """The brand, its regions, agents, stores and guides; names and phones come from the caller's pools."""
    stores: list[Store] = []
    store_docs: list[dict[str, Any]] = []
    for code, city_name, district, kind, agent, mall, street in _STORE_PLAN:
        city = CITY_BY_NAME[city_name]
        lat, lng = next((la, lo) for name, la, lo in city.districts if name == district)
        place = mall or street.rstrip("0123456789号")
        pos = _pos_source(kind, agent)
        stores.append(Store(code, f"悦衫 {city.short}{place}店", kind, city, district, agent, pos))
        opened = f"{rng.randint(2015, 2024)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        guides = [
            {"code": f"{code}-{g:02d}", "name": person_name(), "phone": staff_phone()}
            for g in range(1, rng.randint(2, 4) + 1)
        ]
        store_docs.append(
            {
                "code": code,
                "name": stores[-1].name,
                "kind": kind,
                "agent_code": agent,
                "region_code": city.region,
                "province": city.province,
                "city": city.name,
                "district": district,
                "address": street + (mall or ""),
                "mall": mall,
                # ±0.008° is under a kilometre: the store stays in its district.
                "latitude": round(lat + rng.uniform(-0.008, 0.008), 6),
                "longitude": round(lng + rng.uniform(-0.008, 0.008), 6),
                "opened_on": opened,
                "pos_source": pos,
                "guides": guides,
            }
        )
    doc: dict[str, Any] = {
        "schema_version": 1,
        "tenant": {"code": TENANT_CODE, "name": BRAND_NAME},
        "regions": [{"code": c, "name": n} for c, n in REGIONS],
        "agents": [
            {
                "code": c,
                "name": n,
                "region_code": r,
                "contact_name": person_name(),
                "contact_phone": staff_phone(),
            }
            for c, n, r in _AGENTS
        ],
        "stores": store_docs,
        "shops": [
            {"channel": "tmall", "external_id": TMALL_SHOP[0], "name": TMALL_SHOP[1]},
            {"channel": "jd", "external_id": JD_SHOP[0], "name": JD_SHOP[1]},
            {"channel": "wechat", "external_id": WECHAT_APPID, "name": f"{BRAND_NAME}会员俱乐部"},
            {"channel": "miniprogram", "external_id": MINIPROGRAM_APPID, "name": "悦衫会员中心"},
        ],
        "pos_sources": [
            {"code": c, "name": n, "store_kind": k, "agent_code": a} for c, n, k, a in POS_SOURCES
        ],
    }
    by_city: dict[str, list[Store]] = {}
    for store in stores:
        if store.pos_source:
            by_city.setdefault(store.city.name, []).append(store)
    return Org(doc, stores, by_city)


def write_org(org: Org, path: Path) -> None:
    path.write_text(json.dumps(org.doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
