"""No phone, ID number, e-mail or street address is ever written to the database in plaintext.

SQLite only: the whole database is one file (plus its WAL), so after a checkpoint every byte that was
written can be searched. The data goes in through every path that stores personal data: registration
over HTTP, a file import over HTTP and the import pipeline with hand-built rows. A card number (not
personal data, kept in plaintext for lookups) is searched for too and must be found, so a search that
finds nothing because it reads the wrong bytes cannot pass.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from stdnum.cn import ric

from datong.api.app import create_app
from datong.api.routers import imports as imports_router
from datong.core.config import Settings
from datong.core.context import Runtime
from datong.core.crypto import Keyring
from datong.core.db import Database
from datong.tenancy import rules
from datong.tenancy.service import create_api_key, create_tenant
from tests.conftest import _sqlite_database
from tests.members.helpers import card, ingest


def id_number(first17: str) -> str:
    number = first17 + ric.calc_check_digit(first17 + "?")  # stdnum wants a placeholder check character
    assert ric.is_valid(number)
    return number


@dataclass
class Person:
    phone: str
    phone_as_typed: str
    card: str
    name: str
    id_number: str | None = None
    address: str | None = None  # the full line as typed
    street: str | None = None  # what must never be readable: the part below the district
    email: str | None = None


# Through POST /api/v1/members/register (no ID number or address fields there).
REGISTERED = [
    Person("13912345678", "+86 139 1234 5678", "VIPCARD-7788990", "王芳", email="wang.fang.1990@example.com"),
    Person("18623456789", "186-2345-6789", "VIPCARD-7788991", "李娜"),
]
# Through POST /api/v1/imports (a POS member export with ID numbers and addresses).
IMPORTED = [
    Person(
        "13587654321",
        "+8613587654321",
        "POSCARD-5566001",
        "张伟",
        id_number("33010619900307123"),
        "浙江省杭州市西湖区文三路478号华星时代广场A座1203室",
        "文三路478号华星时代广场A座1203室",
    ),
    Person(
        "15011112222",
        "150 1111 2222",
        "POSCARD-5566002",
        "刘洋",
        id_number("44030519851224561"),
        "广东省深圳市南山区科技园南区深南大道9988号",
        "科技园南区深南大道9988号",
    ),
]
# Through the import pipeline with hand-built rows (tests/members/helpers.py).
INGESTED = [
    Person(
        "17799887766",
        "17799887766",
        "CRMCARD-3344001",
        "陈静",
        id_number("11010119770615002"),
        "朝阳区建国路88号SOHO现代城5号楼1601",
        "朝阳区建国路88号SOHO现代城5号楼1601",
    ),
]
EVERYONE = REGISTERED + IMPORTED + INGESTED


def phone_spellings(phone: str) -> list[str]:
    spaced = f"{phone[:3]} {phone[3:7]} {phone[7:]}"
    return [phone, f"+86{phone}", f"+86 {spaced}", spaced, f"{phone[:3]}-{phone[3:7]}-{phone[7:]}"]


def secrets_of(person: Person) -> list[str]:
    found = [*phone_spellings(person.phone), person.phone_as_typed]
    if person.id_number:
        found += [person.id_number, person.id_number[:17]]
    if person.street:
        found.append(person.street)
    if person.address:
        found.append(person.address)
    if person.email:
        found.append(person.email)
    return found


@dataclass
class App:
    db: Database
    client: TestClient
    keyring: Keyring
    tenant_id: str
    headers: dict[str, str]
    uploads: Path

    @property
    def path(self) -> Path:
        database = make_url(self.db.url).database
        assert database
        return Path(database)

    def stored_bytes(self) -> bytes:
        """Every byte of the database: its file and any WAL, after folding the WAL into the file."""
        self.db.dispose()
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.close()
        files = [self.path, *(Path(f"{self.path}{suffix}") for suffix in ("-wal", "-journal"))]
        return b"".join(f.read_bytes() for f in files if f.exists())


@pytest.fixture
def sqlite_app(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[App]:
    template = request.getfixturevalue("_sqlite_template")
    for db in _sqlite_database(template, tmp_path):
        with db.unit_of_work() as s:
            tenant = create_tenant(s, code="plaintext-check", name="明文检查")
            secret, _ = create_api_key(
                s,
                tenant_id=tenant.id,
                name="crm",
                scopes=[
                    rules.MEMBERS_READ,
                    rules.MEMBERS_WRITE,
                    rules.MEMBERS_EXPORT,
                    rules.MEMBERS_UNMASK,
                    rules.IMPORTS_WRITE,
                ],
            )
            tenant_id = tenant.id
        keyring = Keyring(master=os.urandom(32))
        app = create_app(
            Runtime(settings=Settings(database_url=db.url), db=db, keyring=keyring), check_schema=True
        )
        uploads = tmp_path / "uploads"
        monkeypatch.setattr(imports_router, "UPLOADS", uploads)
        with TestClient(app) as client:
            yield App(db, client, keyring, tenant_id, {"Authorization": f"Bearer {secret}"}, uploads)


def store_everyone(app: App, extra_csv_rows: str = "") -> dict[str, str]:
    """Stores every person; returns card → member id."""
    members = {}
    for n, p in enumerate(REGISTERED):
        body: dict[str, Any] = {
            "source": "pos_hq",
            "card_no": p.card,
            "phone": p.phone_as_typed,
            "name": p.name,
        }
        if p.email:
            body["email"] = p.email
        answer = app.client.post(
            "/api/v1/members/register", json=body, headers=app.headers | {"Idempotency-Key": f"r{n}"}
        )
        assert answer.status_code == 201, answer.text
        members[p.card] = answer.json()["member_id"]
    lines = ["会员卡号,姓名,手机号,身份证号,地址"]
    lines += [f"{p.card},{p.name},{p.phone_as_typed},{p.id_number},{p.address}" for p in IMPORTED]
    content = ("\n".join(lines) + "\n" + extra_csv_rows).encode("utf-8")
    answer = app.client.post(
        "/api/v1/imports",
        data={"kind": "members", "source": "pos_store"},
        files={"file": ("members.csv", content, "text/csv")},
        headers=app.headers,
    )
    assert answer.status_code == 202, answer.text
    batch = answer.json()
    assert (batch["status"], batch["rows_ok"]) in (("running", len(IMPORTED)), ("done", len(IMPORTED)))
    rows = []
    for n, p in enumerate(INGESTED, 1):
        row = card(n, "crm", p.card, name=p.name, phone=p.phone)
        row.person.id_number, row.person.address = p.id_number, p.address
        row.raw.update({"id": p.id_number or "", "address": p.address or ""})
        rows.append(row)
    ingest(app.db, app.keyring, app.tenant_id, "members", "crm", rows, name="crm.csv")
    for source, p in [("pos_store", p) for p in IMPORTED] + [("crm", p) for p in INGESTED]:
        found = app.client.get(
            "/api/v1/members/lookup",
            params={"kind": "card_no", "value": p.card, "namespace": source},
            headers=app.headers,
        ).json()
        assert len(found) == 1, p.card
        members[p.card] = found[0]["id"]
    return members


def test_no_personal_data_is_stored_in_plaintext(sqlite_app: App) -> None:
    app = sqlite_app
    members = store_everyone(app)
    # The data is there, and comes back whole for a caller allowed to see it: it is encrypted, not lost.
    for p in IMPORTED + INGESTED:
        golden = app.client.get(f"/api/v1/members/{members[p.card]}/export", headers=app.headers).json()[
            "golden"
        ]
        assert (golden["phone"], golden["id_number"], golden["address"]) == (p.phone, p.id_number, p.street)
    stored = app.stored_bytes()
    assert len(stored) > 100_000  # the whole database was read
    for p in EVERYONE:
        assert p.card.encode() in stored, f"the card number {p.card} is not in the file: the search is broken"
        for secret in secrets_of(p):
            assert secret.encode("utf-8") not in stored, f"{secret!r} ({p.name}) is stored in plaintext"


def test_a_mistyped_phone_in_a_failed_row_is_not_stored_in_plaintext(sqlite_app: App) -> None:
    app = sqlite_app
    store_everyone(app, extra_csv_rows="POSCARD-5566999,赵敏,1391234567,,\n")
    stored = app.stored_bytes()
    assert b"POSCARD-5566999" not in stored  # a failed row has no identities: its card is only in the raw
    assert b"1391234567" not in stored


def test_an_uploaded_file_does_not_stay_on_disk_in_plaintext(sqlite_app: App) -> None:
    app = sqlite_app
    store_everyone(app)
    app.stored_bytes()  # the import thread has finished once the database is checkpointed
    on_disk = b"".join(f.read_bytes() for f in app.uploads.rglob("*") if f.is_file())
    for p in IMPORTED:
        assert p.phone_as_typed.encode() not in on_disk
