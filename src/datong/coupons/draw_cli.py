"""``datong draws …``: set a lucky draw up from a file, open and close it, print or load its pass codes,
and the audit: the published log, and its replay (against the database, or offline from the published
file alone, as an outside auditor does). See docs/draws.md."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from datong.core.cli_context import ACTOR, TenantOpt, brand_context
from datong.core.errors import ValidationFailed

draws_app = typer.Typer(help="Lucky draws (抽奖): set up, pass codes, audit.", no_args_is_help=True)
console = Console()


def _new_file(path: Path, field: str) -> None:
    """Refuses to write over a file: pass codes or a log written over are lost."""
    if path.exists():
        raise ValidationFailed(f"{path} exists; name a new file", field=field)


def _show(draw_view: dict[str, Any]) -> None:
    table = Table(title=f"draw {draw_view['code']} — {draw_view['name']} ({draw_view['status']})")
    for column in ("#", "prize", "kind", "weight", "stock", "left", "gives"):
        table.add_column(column)
    for p in draw_view["prizes"]:
        gives = p["coupon_template"] or (f"{p['points']} points" if p["points"] else "")
        stock = "unlimited" if p["stock"] is None else str(p["stock"])
        left = "" if p["remaining"] is None else str(p["remaining"])
        table.add_row(
            str(p["position"]), f"{p['code']} {p['name']}", p["kind"], str(p["weight"]), stock, left, gives
        )
    console.print(table)
    console.print(f"commitment (sha256 of the seed): {draw_view['commitment']}", soft_wrap=True)
    if draw_view["seed"]:
        console.print(f"seed (revealed): {draw_view['seed']}", soft_wrap=True)
    console.print(f"entries: {draw_view['entry_count']}")


@draws_app.command("create")
def create_cmd(
    file: Annotated[Path, typer.Option("--file", help="the draw as JSON (see docs/draws.md)")],
    tenant: TenantOpt = None,
) -> None:
    """Create a draw (a draft) and its prizes from a JSON file; prints the commitment to publish."""
    from datong.coupons.draw_queries import draw_prizes
    from datong.coupons.draw_schemas import draw_view
    from datong.coupons.lucky_draws import create_draw

    rt, tid = brand_context(tenant)
    try:
        data = json.loads(file.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ValidationFailed(f"cannot read {file}: {exc}", field="file") from None
    with rt.db.unit_of_work() as s:
        draw = create_draw(s, tenant_id=tid, keyring=rt.keyring, actor=ACTOR, data=data)
        view = draw_view(draw, draw_prizes(s, draw))
    _show(view)


@draws_app.command("open")
def open_cmd(code: str, tenant: TenantOpt = None) -> None:
    """Open a draft draw: entries are taken from now (or from its opens_at)."""
    from datong.coupons.lucky_draws import open_draw

    rt, tid = brand_context(tenant)
    with rt.db.unit_of_work() as s:
        draw = open_draw(s, tenant_id=tid, code=code, actor=ACTOR)
    console.print(f"draw {draw.code} is open; commitment {draw.commitment}", soft_wrap=True)


@draws_app.command("close")
def close_cmd(code: str, tenant: TenantOpt = None) -> None:
    """Close an open draw: no more entries, and the seed is revealed for the audit."""
    from datong.coupons.lucky_draws import close_draw

    rt, tid = brand_context(tenant)
    with rt.db.unit_of_work() as s:
        draw = close_draw(s, tenant_id=tid, keyring=rt.keyring, code=code, actor=ACTOR)
    console.print(
        f"draw {draw.code} is closed after {draw.entry_count} entries; seed {draw.revealed_seed}",
        soft_wrap=True,
    )


@draws_app.command("pass-codes")
def pass_codes_cmd(
    code: str,
    batch: Annotated[str, typer.Option(help="the print run these codes belong to")],
    count: Annotated[int | None, typer.Option(help="generate this many new codes")] = None,
    out: Annotated[Path | None, typer.Option(help="CSV for the printer (the only copy of the codes)")] = None,
    load: Annotated[Path | None, typer.Option(help="load the brand's own codes instead: one a line")] = None,
    tenant: TenantOpt = None,
) -> None:
    """Generate pass codes for printing (--count N --out codes.csv), or load a list (--load FILE)."""
    from datong.coupons.codes import display_code
    from datong.coupons.draw_codes import generate_pass_codes, load_pass_codes

    if (count is None) == (load is None):
        raise ValidationFailed("give --count N --out FILE to generate, or --load FILE", field="count")
    rt, tid = brand_context(tenant)
    if load is not None:
        try:
            lines = load.read_text("utf-8-sig").splitlines()
        except (OSError, ValueError) as exc:
            raise ValidationFailed(f"cannot read {load}: {exc}", field="load") from None
        with rt.db.unit_of_work() as s:
            loaded = load_pass_codes(
                s, tenant_id=tid, keyring=rt.keyring, code=code, codes=lines, batch=batch, actor=ACTOR
            )
        console.print(f"{loaded} pass codes loaded for draw {code} (batch {batch})")
        return
    if out is None:
        raise ValidationFailed("name the CSV to write the new codes to: --out FILE", field="out")
    assert count is not None
    _new_file(out, "out")
    with rt.db.unit_of_work() as s:
        codes = generate_pass_codes(
            s, tenant_id=tid, keyring=rt.keyring, code=code, count=count, batch=batch, actor=ACTOR
        )
        # Written before the commit: if the file cannot be written, no code exists that no one has.
        with out.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["code", "printed"])
            writer.writerows([c, display_code(c)] for c in codes)
    console.print(
        f"{len(codes)} pass codes written to {out}: print them, then keep the file safe or destroy it"
    )


@draws_app.command("audit")
def audit_cmd(
    code: str,
    out: Annotated[Path | None, typer.Option(help="the log as CSV: entry_no,prize_code")] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="everything an auditor needs, as JSON")
    ] = None,
    tenant: TenantOpt = None,
) -> None:
    """The published audit: commitment, prize table, the log and (once closed) the seed."""
    from datong.coupons.draw_queries import audit_draw

    rt, tid = brand_context(tenant)
    for path, field in ((out, "out"), (json_out, "json")):
        if path is not None:
            _new_file(path, field)
    with rt.db.reading() as s:
        found = audit_draw(s, tenant_id=tid, code=code)
    table = Table(title=f"draw {found.code} ({found.status}): {len(found.log)} entries")
    for column in ("#", "prize", "weight", "stock", "won"):
        table.add_column(column)
    for position, prize in enumerate(found.prizes):
        won = sum(1 for _, c in found.log if c == prize.code)
        stock = "unlimited" if prize.stock is None else str(prize.stock)
        table.add_row(str(position), prize.code, str(prize.weight), stock, str(won))
    console.print(table)
    console.print(f"draw id: {found.draw_id}", soft_wrap=True)
    console.print(f"commitment: {found.commitment}", soft_wrap=True)
    console.print(f"seed: {found.seed or 'revealed when the draw closes'}", soft_wrap=True)
    if out is not None:
        with out.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["entry_no", "prize_code"])
            writer.writerows(found.log)
        console.print(f"log written to {out}")
    if json_out is not None:
        json_out.write_text(json.dumps(found.as_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
        console.print(f"audit written to {json_out}")


@draws_app.command("verify")
def verify_cmd(
    code: Annotated[str | None, typer.Argument(help="a draw in the database (needs the key)")] = None,
    json_in: Annotated[
        Path | None, typer.Option("--json", help="check a published audit file instead, offline")
    ] = None,
    tenant: TenantOpt = None,
) -> None:
    """Replay a draw's log: every outcome recomputed from the seed. Exit code 1 when anything differs."""
    from datong.coupons.draws import Mismatch, replay_published

    if (code is None) == (json_in is None):
        raise ValidationFailed("name a draw CODE, or a published audit with --json FILE", field="code")
    problems: list[str] = []
    mismatches: list[Mismatch]
    if json_in is not None:
        try:
            published = json.loads(json_in.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise ValidationFailed(f"cannot read {json_in}: {exc}", field="json") from None
        try:
            mismatches = replay_published(published)
        except ValueError as exc:  # the seed does not match the commitment, the log is not numbered …
            mismatches, problems = [], [str(exc)]
        entries = len(published.get("log") or []) if isinstance(published, dict) else 0
    else:
        from datong.coupons.draw_queries import verify_draw

        assert code is not None
        rt, tid = brand_context(tenant)
        with rt.db.reading() as s:
            verdict = verify_draw(s, tenant_id=tid, code=code, keyring=rt.keyring)
        entries, mismatches, problems = verdict.entries, verdict.mismatches, verdict.problems
    for m in mismatches:
        console.print(f"[red]entry {m.entry_no}[/]: recorded {m.recorded}, the seed gives {m.recomputed}")
    for problem in problems:
        console.print(f"[red]{problem}[/]")
    if mismatches or problems:
        raise typer.Exit(1)
    console.print(f"all {entries} entries recomputed: every outcome matches")
