"""The demo generator: deterministic, true to the channel formats, and its truth complete."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

from datong.demo import DemoManifest, generate_demo, generate_source_records
from datong.demo.evaluate import pairwise_scores

PEOPLE = 300

# shared/reference/channels.md, in order, then the later columns the generator writes.
TMALL_HEADER = [
    "订单编号", "买家会员名", "买家支付宝账号", "买家应付货款", "买家应付邮费", "买家支付积分", "总金额",
    "返点积分", "买家实际支付金额", "买家实际支付积分", "订单状态", "买家留言", "收货人姓名", "收货地址",
    "运送方式", "联系电话", "联系手机", "订单创建时间", "订单付款时间", "宝贝标题", "宝贝种类", "物流单号",
    "物流公司", "订单备注", "宝贝总数量", "店铺Id", "店铺名称", "订单关闭原因", "卖家服务费",
    "是否手机订单", "分阶段订单信息", "特权订金订单id", "是否上传合同照片", "是否上传小票", "是否代付",
    "定金排名", "修改后的sku", "修改后的收货地址", "异常信息", "天猫卡券抵扣", "集分宝抵扣", "是否是O2O交易",
]  # fmt: skip
# Which column of which source holds which never-masked key.
KEY_COLUMNS = {
    "tmall": [("nick", "买家会员名")],
    "jd": [("pin", "下单帐号")],
    "wechat": [("openid", "openid"), ("unionid", "unionid")],
    "miniprogram": [("openid", "openid"), ("unionid", "unionid")],
    "pos_direct": [("card_no", "会员卡号")],
    "pos_franchise": [("card_no", "卡号")],
    "pos_counter": [("card_no", "会员号")],
}
PHONE_COLUMNS = {"miniprogram": "phone", "pos_direct": "手机号", "pos_franchise": "联系电话",
                 "pos_counter": "手机号码"}  # fmt: skip


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoManifest:
    return generate_demo(tmp_path_factory.mktemp("demo"), people=PEOPLE, seed=7)


def rows_of(manifest: DemoManifest, source: str) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for f in manifest.files:
        if f.source != source:
            continue
        text = f.path.read_bytes().decode(f.encoding, errors="strict")
        if f.kind == "wechat-fans":
            rows += [{k: str(v) for k, v in json.loads(line).items()} for line in text.splitlines()]
        else:
            rows += list(csv.DictReader(io.StringIO(text)))
    return rows


def truth(manifest: DemoManifest) -> list[dict[str, str]]:
    with manifest.truth.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def phone_digits(text: str) -> str | None:
    """A plain reading of a mobile number (the real normaliser lives in datong.identity)."""
    digits = re.sub(r"\D", "", text.translate(str.maketrans("０１２３４５６７８９", "0123456789")))
    for prefix in ("0086", "86"):
        if len(digits) == 11 + len(prefix) and digits.startswith(prefix):
            digits = digits[len(prefix) :]
    return digits if len(digits) == 11 and digits.startswith("1") else None


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_same_seed_gives_identical_bytes(tmp_path: Path, demo: DemoManifest) -> None:
    again = generate_demo(tmp_path / "again", people=PEOPLE, seed=7)
    assert snapshot(again.out_dir) == snapshot(demo.out_dir)
    other = generate_demo(tmp_path / "other", people=PEOPLE, seed=8)
    assert snapshot(other.out_dir)["truth.csv"] != snapshot(demo.out_dir)["truth.csv"]


def test_worker_processes_do_not_change_the_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("datong.demo.generator.CHUNK", 100)  # three chunks out of 300 people
    one = generate_demo(tmp_path / "one", people=PEOPLE, workers=1)
    two = generate_demo(tmp_path / "two", people=PEOPLE, workers=2)
    assert snapshot(one.out_dir) == snapshot(two.out_dir)


def test_tmall_export_is_gbk_with_the_classic_columns(demo: DemoManifest) -> None:
    [tmall] = [f for f in demo.files if f.kind == "tmall-orders"]
    assert tmall.encoding == "gbk" and tmall.shop_id
    text = tmall.path.read_bytes().decode("gbk", errors="strict")
    lines = text.split("\r\n")
    assert next(csv.reader([lines[0]])) == TMALL_HEADER
    rows = rows_of(demo, "tmall")
    assert len(rows) == tmall.records > 0
    # The order number is an Excel formula, written bare in the file: ="2890…" with 18-19 digits.
    assert all(re.fullmatch(r'="2890\d{14,15}"', line.split(",")[0]) for line in lines[1:] if line)
    assert len({r["订单编号"] for r in rows}) == len(rows)
    assert all(r["联系手机"].startswith("'") for r in rows)
    masked = [r for r in rows if "****" in r["联系手机"]]
    assert 0.15 < len(masked) / len(rows) < 0.45
    assert {r["订单状态"] for r in rows} >= {"交易成功", "交易关闭", "卖家已发货，等待买家确认"}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", r["订单创建时间"]) for r in rows)
    assert all(re.fullmatch(r"\d+\.\d\d|abc", r["买家实际支付金额"]) for r in rows)


def test_other_files_have_their_encodings_and_headers(demo: DemoManifest) -> None:
    by_source = {f.source: f for f in demo.files}
    assert by_source["jd"].path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert by_source["pos_direct"].path.read_bytes().startswith("\ufeff会员卡号,姓名,手机号".encode())
    franchise = by_source["pos_franchise"].path.read_bytes().decode("gbk")
    assert franchise.startswith("卡号,会员姓名,联系电话,性别,出生日期,所属门店,注册时间,积分")
    assert by_source["wechat"].appid and by_source["miniprogram"].appid
    assert [f.kind for f in demo.files][:3] == ["members"] * 3  # store cards are imported first
    assert sum(f.records for f in demo.files) == demo.records


def test_truth_covers_every_identity_and_row(demo: DemoManifest) -> None:
    rows = truth(demo)
    in_truth = {(r["source"], r["kind"], r["value"]): r["person_id"] for r in rows}
    assert len(in_truth) == len(rows) == demo.identities  # each identity once
    in_files: set[tuple[str, str, str]] = set()
    for source, keys in KEY_COLUMNS.items():
        for row in rows_of(demo, source):
            in_files |= {(source, kind, row[col]) for kind, col in keys if row.get(col)}
        if source in PHONE_COLUMNS:
            phones = {phone_digits(row[PHONE_COLUMNS[source]]) for row in rows_of(demo, source)}
            in_files |= {(source, "phone", p) for p in phones if p}
    assert in_files == set(in_truth)
    # Every data row has its person, numbered 1..n within its file.
    with demo.truth_records.open(encoding="utf-8") as fh:
        records = list(csv.DictReader(fh))
    assert len(records) == demo.records
    per_file: dict[str, list[int]] = defaultdict(list)
    for r in records:
        per_file[r["file"]].append(int(r["row_no"]))
    for f in demo.files:
        assert per_file[f.path.relative_to(demo.out_dir).as_posix()] == list(range(1, f.records + 1))


def test_row_truth_agrees_with_identity_truth(demo: DemoManifest) -> None:
    in_truth = {(r["source"], r["kind"], r["value"]): r["person_id"] for r in truth(demo)}
    with demo.truth_records.open(encoding="utf-8") as fh:
        by_row = {(r["file"], int(r["row_no"])): r["person_id"] for r in csv.DictReader(fh)}
    for f in demo.files:
        rel = f.path.relative_to(demo.out_dir).as_posix()
        for n, row in enumerate(rows_of(demo, f.source), start=1):
            kind, col = KEY_COLUMNS[f.source][0]
            assert in_truth[(f.source, kind, row[col])] == by_row[(rel, n)]


def test_unionid_ties_the_fan_to_the_mini_program_member(demo: DemoManifest) -> None:
    rows = truth(demo)
    fans = {r["value"]: r["person_id"] for r in rows if r["source"] == "wechat" and r["kind"] == "unionid"}
    members = {
        r["value"]: r["person_id"] for r in rows if r["source"] == "miniprogram" and r["kind"] == "unionid"
    }
    shared = set(fans) & set(members)
    assert shared and all(fans[u] == members[u] for u in shared)


def test_a_household_sharing_a_phone_stays_two_people(demo: DemoManifest) -> None:
    with demo.truth_cases.open(encoding="utf-8") as fh:
        cases = list(csv.DictReader(fh))
    households = [c for c in cases if c["case"] == "household"]
    assert households and any(c["case"] == "changed_phone" for c in cases)
    shared = [c for c in households if c["detail"].startswith("shared_phone:")]
    assert shared
    owner, partner = shared[0]["person_id"], shared[0]["other_person_id"]
    source = shared[0]["detail"].split(":")[1]
    assert owner != partner
    rows = truth(demo)
    cards = {r["person_id"] for r in rows if r["source"] == source and r["kind"] == "card_no"}
    assert {owner, partner} <= cards  # each holds a card of their own
    # The partner's card carries the owner's phone; in the truth that phone is the owner's alone.
    [owner_phone] = [r["value"] for r in rows if r["source"] == source and r["kind"] == "phone"
                     and r["person_id"] == owner]  # fmt: skip
    assert not [r for r in rows if r["value"] == owner_phone and r["person_id"] == partner]
    with demo.truth_noise.open(encoding="utf-8") as fh:
        noted = [r for r in csv.DictReader(fh) if r["noise"] == "shared_phone" and r["clean"] == owner]
    assert noted


def test_noise_is_recorded_with_the_clean_value(demo: DemoManifest) -> None:
    with demo.truth_noise.open(encoding="utf-8") as fh:
        noise = list(csv.DictReader(fh))
    kinds = {r["noise"] for r in noise}
    assert kinds >= {"masked_phone", "gift_receiver", "name_traditional", "name_missing", "date_format"}
    pos = rows_of(demo, "pos_direct")
    checked = 0
    for r in noise:
        if r["file"] != "pos/pos_direct.csv":
            continue
        cell = pos[int(r["row_no"]) - 1][r["field"]]
        if r["noise"] in ("name_traditional", "name_homophone", "date_format", "date_impossible"):
            assert cell and cell != r["clean"]
        elif r["noise"] in ("name_missing", "phone_missing", "date_missing"):
            assert cell == ""
        elif r["noise"] in ("phone_format", "phone_fullwidth"):
            assert cell != r["clean"] and phone_digits(cell) == r["clean"]
        elif r["noise"] == "phone_invalid":
            assert phone_digits(cell) is None
        checked += 1
    assert checked > 20


def test_org_json(demo: DemoManifest) -> None:
    org = json.loads(demo.org.read_text(encoding="utf-8"))
    assert org["tenant"]["code"] == demo.tenant_code == "demo"
    stores = org["stores"]
    assert len(stores) >= 40 and len({s["city"] for s in stores}) >= 8
    assert {s["kind"] for s in stores} == {"direct", "franchise", "counter"}
    agents = {a["code"] for a in org["agents"]}
    assert 4 <= len(agents) <= 6
    for s in stores:
        assert (s["agent_code"] in agents) == (s["kind"] == "franchise")
        assert s["kind"] != "counter" or s["mall"]
        assert 2 <= len(s["guides"]) <= 4
        assert 18 < s["latitude"] < 41 and 102 < s["longitude"] < 122
    assert {sh["channel"] for sh in org["shops"]} == {"tmall", "jd", "wechat", "miniprogram"}


def test_record_budget_is_exact(tmp_path: Path) -> None:
    manifest = generate_source_records(tmp_path, records=1234, seed=3)
    assert manifest.records == 1234 == sum(f.records for f in manifest.files)
    assert manifest.people > 1234 / 4
    with manifest.truth_records.open(encoding="utf-8") as fh:
        assert sum(1 for _ in fh) == 1234 + 1


def _write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_pairwise_scores_one_wrong_merge(tmp_path: Path) -> None:
    truth_csv = _write(tmp_path / "t.csv", "source,kind,value,person_id",
                       ["tmall,nick,a,P1", "jd,pin,b,P1", "tmall,nick,c,P2", "jd,pin,d,P2"])  # fmt: skip
    # c (P2) wrongly merged into P1's member: predicted pairs ab, ac, bc; only ab is true.
    ids = _write(tmp_path / "e.csv", "source,kind,value,member_id",
                 ["tmall,nick,a,M1", "jd,pin,b,M1", "tmall,nick,c,M1", "jd,pin,d,M2"])  # fmt: skip
    s = pairwise_scores(truth_csv, ids)
    assert (s.true_pairs, s.predicted_pairs, s.correct_pairs) == (2, 3, 1)
    assert s.precision == pytest.approx(1 / 3) and s.recall == pytest.approx(1 / 2)
    assert s.f1 == pytest.approx(0.4)
    assert (s.identities_matched, s.identities_missing, s.identities_skipped, s.identities_unknown) == (
        4,
        0,
        0,
        0,
    )


def test_pairwise_scores_phones_missing_and_unknown(tmp_path: Path) -> None:
    truth_csv = _write(tmp_path / "t.csv", "source,kind,value,person_id", [
        "pos_direct,card_no,c1,P1", "pos_direct,phone,13812341234,P1",  # mask unique: joins
        "pos_direct,card_no,c2,P2", "pos_direct,phone,13900005678,P2",  # same mask as P3's: skipped
        "pos_direct,card_no,c3,P3", "pos_direct,phone,13911115678,P3",
        "tmall,nick,n4,P1",  # not in the export: missing
    ])  # fmt: skip
    ids = _write(tmp_path / "e.csv", "source,kind,value,member_id", [
        "pos_direct,card_no,c1,M1", "pos_direct,phone,138****1234,M1",
        "pos_direct,card_no,c2,M2", "pos_direct,phone,139****5678,M2",
        "pos_direct,card_no,c3,M2", "jd,pin,zz,M9",  # P2 and P3 wrongly merged; zz unknown
    ])  # fmt: skip
    s = pairwise_scores(truth_csv, ids)
    # matched: c1, phone P1, c2, c3 -> true pairs {c1-phone}; predicted {c1-phone, c2-c3}.
    assert (s.true_pairs, s.predicted_pairs, s.correct_pairs) == (1, 2, 1)
    assert (s.precision, s.recall) == (0.5, 1.0)
    assert (s.identities_matched, s.identities_missing, s.identities_skipped, s.identities_unknown) == (
        4,
        1,
        2,
        1,
    )
