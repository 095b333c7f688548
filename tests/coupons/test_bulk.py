"""Issuing a coupon to every member of a list file (CSV or Excel): members by id, card or phone, every
bad row kept with its column and reason (the row encrypted), the same file twice issuing nothing more, a
stopped run resuming where it stopped, refusals of a whole file before anything is written, and the
command line. On SQLite and PostgreSQL."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from datong.channels.registration import Registration, register_member
from datong.core.crypto import Keyring
from datong.core.db import Database
from datong.core.errors import Conflict, NotFound, ValidationFailed
from datong.coupons import service
from datong.coupons.bulk import run_bulk_issue
from datong.coupons.models import Coupon, CouponIssueBatch, CouponIssueRow, CouponTemplate
from datong.coupons.queries import error_rows, row_raw
from datong.members.service import delete_member, merge_members
from datong.org.service import load_org
from datong.tenancy.models import AuditEntry
from datong.tenancy.service import create_tenant
from tests.test_cli import _ok, cli_env

__all__ = ["cli_env"]  # the fixture, used by name

NOW = datetime(2026, 11, 23, 6, tzinfo=UTC)
ACTOR = "system:test"
SHARED_PHONE = "13900000077"  # a household: two people, one phone


@dataclass
class Brand:
    db: Database
    keyring: Keyring
    tenant_id: str
    members: dict[str, str] = field(default_factory=dict)  # label → member id

    def run(self, path: Path, **more: Any) -> CouponIssueBatch:
        options: dict[str, Any] = {"card_source": "pos_hq", "at": NOW} | more
        return run_bulk_issue(
            self.db,
            self.keyring,
            tenant_id=self.tenant_id,
            template_code="T",
            path=path,
            actor=ACTOR,
            **options,
        )

    def counts(self) -> dict[str, int]:
        with self.db.reading() as s:
            return {
                model.__tablename__: int(s.scalar(select(func.count()).select_from(model)) or 0)
                for model in (Coupon, CouponIssueBatch, CouponIssueRow, AuditEntry)
            } | {"issued_count": int(s.scalar(select(CouponTemplate.issued_count)) or 0)}

    def holders(self) -> dict[str, int]:
        """Coupons of T per member label."""
        labels = {v: k for k, v in self.members.items()}
        with self.db.reading() as s:
            rows = s.execute(select(Coupon.member_id, func.count()).group_by(Coupon.member_id)).all()
        return {labels[member_id]: int(n) for member_id, n in rows}


def _brand(db: Database, keyring: Keyring, **template: Any) -> Brand:
    with db.unit_of_work() as s:
        tenant_id = create_tenant(s, code="beauty", name="美妆").id
        load_org(
            s,
            tenant_id=tenant_id,
            actor=ACTOR,
            data={"stores": [{"code": "S1", "name": "一店", "kind": "direct"}]},
        )
        brand = Brand(db, keyring, tenant_id)
        people = {
            "ann": ("C001", "13900000001", "王芳"),
            "bob": ("C002", "13900000002", "李娜"),
            "cat": ("C003", "13900000003", "张伟"),
            "dan": ("C004", "13900000004", "刘洋"),
            "eve": ("C005", "13900000005", "陈静"),
            "fay": ("C006", "13900000006", "杨磊"),
            "gus": ("C007", "13900000007", "赵强"),
            "hal": ("C008", "13900000008", "孙丽"),
            "mum": ("C010", SHARED_PHONE, "周敏"),
            "son": ("C011", SHARED_PHONE, "周杰"),
        }
        for label, (card, phone, name) in people.items():
            brand.members[label], created = register_member(
                s,
                tenant_id=tenant_id,
                keyring=keyring,
                actor=ACTOR,
                registration=Registration(
                    source="pos_hq", card_no=card, phone=phone, name=name, store_code="S1"
                ),
            )
            assert created, label
        delete_member(
            s,
            tenant_id=tenant_id,
            keyring=keyring,
            member_id=brand.members["gus"],
            actor=ACTOR,
            reason="PIPL request",
        )
        merge_members(
            s,
            tenant_id=tenant_id,
            survivor_id=brand.members["dan"],
            absorbed_id=brand.members["hal"],
            rule="manual",
            evidence={"reason": "one person"},
            actor=ACTOR,
        )
        service.create_template(
            s, tenant_id=tenant_id, actor=ACTOR, code="T", name="立减10元", kind="cash_off", amount_fen=1000,
            valid_days=30, **template,
        )  # fmt: skip
    return brand


def _csv(path: Path, header: str, *rows: str) -> Path:
    path.write_text("\n".join((header, *rows)) + "\n", encoding="utf-8")
    return path


def test_one_coupon_per_good_row_and_every_bad_row_kept_with_its_reason(
    database: Database, keyring: Keyring, tmp_path: Path
) -> None:
    brand = _brand(database, keyring, total_quantity=6, per_member_limit=1)
    m = brand.members
    with database.unit_of_work() as s:  # fay had this coupon already, by the key the file gives
        service.issue_coupon(
            s,
            tenant_id=brand.tenant_id,
            template_code="T",
            member_id=m["fay"],
            issue_key="crm-6",
            source="api",
            at=NOW,
        )
    path = _csv(
        tmp_path / "members.csv",
        "member_id,会员卡号,手机号,issue_key,备注",
        f"{m['ann']},,,,by id",  # 1
        ",C002,,,by card",  # 2: bob
        ",,139 0000 0003,,by phone",  # 3: cat
        f"{m['ann']},,,,twice",  # 4
        "mem_00000000000000000000000000,,,,unknown",  # 5
        "",  # a blank line: skipped, still counted
        f"{m['gus']},,,,deleted",  # 7
        f"{m['hal']},,,,merged into dan",  # 8: dan
        ",,13900000099,,nobody's phone",  # 9
        ",,12345,,not a phone",  # 10
        f",,{SHARED_PHONE},,household",  # 11
        ",C404,,,no such card",  # 12
        ",,,,names no one",  # 13
        f"{m['eve']},,,crm-5,own key",  # 14: eve
        f"{m['fay']},,,crm-6,had it already",  # 15
        f"{m['mum']},,,crm-5,key of another",  # 16
        f"{m['son']},,,,over budget",  # 17: the budget of 6 is spent (fay's came first)
    )
    batch = brand.run(path, chunk_rows=4)
    assert (batch.status, batch.rows_seen, batch.rows_issued, batch.rows_already, batch.rows_failed) == (
        "done",
        16,
        5,
        1,
        10,
    )
    assert brand.holders() == {"ann": 1, "bob": 1, "cat": 1, "dan": 1, "eve": 1, "fay": 1}
    with database.reading() as s:
        kept = list(s.scalars(select(CouponIssueRow).order_by(CouponIssueRow.row_no)))
        assert [(r.row_no, r.field, r.reason) for r in kept] == [
            (
                4,
                "member_id",
                "the member is in this file already (row 1), and 'T' gives at most 1 per member",
            ),
            (5, "member_id", "no member mem_00000000000000000000000000"),
            (7, "member_id", f"member {m['gus']} is deleted"),
            (9, "手机号", "no member with this phone"),
            (10, "手机号", "not a mainland mobile or international number (5 digits)"),
            (11, "手机号", "2 members share this phone: name the member by member_id"),
            (12, "会员卡号", "no member with card C404"),
            (13, "member_id", "the row names no member"),
            (16, "issue_key", "this issue key was used for another member"),
            (17, "template", "the budget of 'T' is spent"),
        ]
        assert all(SHARED_PHONE.encode() not in r.raw_enc for r in kept)  # sealed, not plain
        assert row_raw(keyring, kept[4]) == {
            "member_id": "",
            "会员卡号": "",
            "手机号": "12345",
            "issue_key": "",
            "备注": "not a phone",
        }
        report = list(error_rows(s, keyring, batch.id))
        coupons = {c.issue_key: c for c in s.scalars(select(Coupon))}
    assert report[5] == (
        11,
        "手机号",
        "2 members share this phone: name the member by member_id",
        f"||{SHARED_PHONE}||household",
    )
    assert sorted(coupons) == sorted([f"bulk:{batch.id}:{n}" for n in (1, 2, 3, 8)] + ["crm-5", "crm-6"])
    assert {c.source for k, c in coupons.items() if k != "crm-6"} == {"bulk"}
    # The same file again: the same batch, nothing more.
    before = brand.counts()
    again = brand.run(path)
    assert (again.id, again.status, again.rows_issued, again.rows_failed) == (batch.id, "done", 5, 10)
    assert brand.counts() == before
    with database.reading() as s:
        actions = s.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.object_id == batch.id)
            .order_by(AuditEntry.at, AuditEntry.id)
        )
        assert list(actions) == ["coupon.bulk_start", "coupon.bulk_finish"]


class Stop(Exception):
    pass


def test_a_stopped_run_resumes_after_the_last_chunk_it_committed(
    database: Database, keyring: Keyring, tmp_path: Path
) -> None:
    brand = _brand(database, keyring)
    labels = ["ann", "bob", "cat", "dan", "eve", "fay"]
    path = _csv(tmp_path / "six.csv", "member_id", *(brand.members[label] for label in labels))
    seen: list[int] = []

    def stop_after_two(batch: CouponIssueBatch) -> None:
        seen.append(batch.rows_seen)
        if batch.rows_seen >= 2:
            raise Stop  # the process dies between two chunks

    with pytest.raises(Stop):
        brand.run(path, chunk_rows=2, progress=stop_after_two)
    assert seen == [0, 2]
    with database.reading() as s:
        stopped = s.scalar(select(CouponIssueBatch))
        assert stopped is not None
        assert (stopped.status, stopped.rows_seen, stopped.rows_issued) == ("running", 2, 2)
    batch = brand.run(path, chunk_rows=2, progress=lambda b: seen.append(b.rows_seen))
    assert seen == [0, 2, 2, 4, 6]
    assert (batch.id, batch.status, batch.rows_seen, batch.rows_issued, batch.rows_already) == (
        stopped.id,
        "done",
        6,
        6,
        0,
    )
    assert brand.holders() == dict.fromkeys(labels, 1)


def test_an_excel_file_by_card_and_phone(database: Database, keyring: Keyring, tmp_path: Path) -> None:
    import openpyxl

    brand = _brand(database, keyring)
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["会员卡号", "手机号"])
    sheet.append(["C001", None])
    sheet.append([None, 13900000002])  # a phone typed into Excel is a number
    path = tmp_path / "members.xlsx"
    workbook.save(path)
    batch = brand.run(path)
    assert (batch.status, batch.rows_issued, batch.rows_failed) == ("done", 2, 0)
    assert brand.holders() == {"ann": 1, "bob": 1}


def test_a_file_that_cannot_be_issued_is_refused_before_anything_is_written(
    database: Database, keyring: Keyring, tmp_path: Path
) -> None:
    brand = _brand(database, keyring)
    good = _csv(tmp_path / "good.csv", "member_id", brand.members["ann"])
    with database.unit_of_work() as s:
        service.create_template(
            s, tenant_id=brand.tenant_id, actor=ACTOR, code="OFF", name="停用", kind="cash_off",
            amount_fen=100, valid_days=7, active=False,
        )  # fmt: skip
    before = brand.counts()
    refusals = [
        (lambda: brand.run(_csv(tmp_path / "a.csv", "姓名,备注", "王芳,x")), ValidationFailed, "file"),
        (
            lambda: brand.run(_csv(tmp_path / "b.csv", "会员卡号", "C001"), card_source=None),
            ValidationFailed,
            "card_source",
        ),
        (lambda: brand.run(tmp_path / "missing.csv"), ValidationFailed, "file"),
        (lambda: brand.run(_csv(tmp_path / "c.xls", "member_id", "x")), ValidationFailed, "file"),
        (
            lambda: run_bulk_issue(
                database, keyring, tenant_id=brand.tenant_id, template_code="NOPE", path=good, actor=ACTOR
            ),
            NotFound,
            "template",
        ),
        (
            lambda: run_bulk_issue(
                database, keyring, tenant_id=brand.tenant_id, template_code="OFF", path=good, actor=ACTOR
            ),
            Conflict,
            "template",
        ),
    ]
    for action, error, where in refusals:
        with pytest.raises(error) as err:
            action()
        assert err.value.field == where  # type: ignore[attr-defined]
    assert brand.counts() == before


def test_from_the_command_line_with_the_errors_and_the_report(cli_env: Database, tmp_path: Path) -> None:
    from datong.core.context import load_runtime

    brand = _brand(cli_env, load_runtime().keyring)
    path = _csv(tmp_path / "list.csv", "会员卡号,手机号", "C001,", ",13900000002", "C404,")
    errors = tmp_path / "errors.csv"
    out = _ok(
        [
            "coupons",
            "issue-bulk",
            "--template",
            "T",
            "--file",
            str(path),
            "--card-source",
            "pos_hq",
            "--errors",
            str(errors),
        ]
    )
    assert "1 rows not issued written to" in out
    with errors.open(encoding="utf-8-sig") as handle:
        assert list(csv.reader(handle)) == [
            ["row_no", "field", "reason", "row"],
            ["3", "会员卡号", "no member with card C404", "C404|"],
        ]
    assert brand.holders() == {"ann": 1, "bob": 1}
    assert "1 rows not issued" in _ok(
        [
            "coupons",
            "issue-bulk",
            "--template",
            "T",
            "--file",
            str(path),
            "--card-source",
            "pos_hq",
            "--errors",
            str(errors),
        ]
    )
    assert brand.holders() == {"ann": 1, "bob": 1}
    _ok(["coupons", "allocate", "--template", "T", "--store", "S1", "--quantity", "5"])
    with cli_env.unit_of_work() as s:
        ann = s.scalar(select(Coupon).where(Coupon.member_id == brand.members["ann"]))
        assert ann is not None
        ann.valid_until = datetime(2020, 1, 1, tzinfo=UTC)  # ran out unused
    report = tmp_path / "report.csv"
    out = _ok(["coupons", "report", "T", "--csv", str(report)])
    assert "立减10元" in out
    with report.open(encoding="utf-8-sig") as handle:
        assert list(csv.reader(handle)) == [
            [
                "scope",
                "store_code",
                "issued",
                "redeemed",
                "expired",
                "redemption_rate",
                "gmv_fen",
                "average_with_fen",
                "average_without_fen",
            ],
            ["template", "", "2", "0", "1", "0.0", "0", "", ""],
        ]
