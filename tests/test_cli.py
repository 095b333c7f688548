"""The ``datong`` command as an operator uses it, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datong.cli import app
from datong.core import config
from datong.core.db import Database

runner = CliRunner()


@pytest.fixture
def cli_env(database: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.setenv("DATONG_DATABASE_URL", database.url)
    config.get_settings.cache_clear()
    yield database
    config.get_settings.cache_clear()


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_import_unify_explain_export(cli_env: Database, tmp_path: Path) -> None:
    _ok(["tenant", "create", "acme", "Acme 服饰"])
    pos = tmp_path / "pos.csv"
    pos.write_text(
        "会员卡号,姓名,手机号,性别,生日\nC001,王芳,13800138000,女,1990-01-02\n"
        "C002,王芳,+86 138 0013 8000,F,1990/1/2\nC003,李四,abc,男,1985-05-05\n",
        encoding="utf-8",
    )
    errors = tmp_path / "errors.csv"
    out = _ok(["import", "members", str(pos), "--source", "pos_hq", "--errors", str(errors)])
    assert "1 failed rows written" in out
    with errors.open(encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["row_no"], r["field"]) for r in rows] == [("3", "手机号")]
    again = _ok(["import", "members", str(pos), "--source", "pos_hq"])
    assert "done" in again
    _ok(["unify"])
    export = tmp_path / "identities.csv"
    _ok(["export", "identities", "--out", str(export)])
    with export.open(encoding="utf-8") as handle:
        identities = list(csv.DictReader(handle))
    assert sorted((r["source"], r["kind"], r["value"]) for r in identities) == [
        ("pos_hq", "card_no", "C001"),
        ("pos_hq", "card_no", "C002"),
        ("pos_hq", "phone", "138****8000"),
    ]
    assert len({r["member_id"] for r in identities}) == 1
    explained = _ok(["members", "explain", identities[0]["member_id"]])
    assert "strong:phone+name" in explained and "C002" in explained


def test_a_missing_key_is_a_clear_error_at_start(cli_env: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATONG_MASTER_KEY")
    config.get_settings.cache_clear()
    result = runner.invoke(app, ["unify"])
    assert result.exit_code != 0
    assert "DATONG_MASTER_KEY" in str(result.exception)


def test_unknown_import_kind_names_the_field(cli_env: Database, tmp_path: Path) -> None:
    _ok(["tenant", "create", "acme", "Acme"])
    path = tmp_path / "x.csv"
    path.write_text("a\n1\n", encoding="utf-8")
    result = runner.invoke(app, ["import", "orders", str(path)])
    assert result.exit_code != 0
    assert getattr(result.exception, "field", None) == "kind"
