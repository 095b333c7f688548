"""The ``datong`` command. Commands are thin: parse, call a service in a unit of work, render with Rich."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from datong.channels.wechat.cli import wechat_app
from datong.core.cli_context import TenantOpt, tenant_id_of
from datong.core.context import Runtime, load_runtime
from datong.core.crypto import write_key_file
from datong.core.errors import DatongError
from datong.core.migrate import upgrade
from datong.coupons.claims_cli import spend_claims_app
from datong.coupons.cli import coupons_app
from datong.coupons.draw_cli import draws_app
from datong.coupons.orders_cli import coupon_orders_app
from datong.guides.cli import guides_app
from datong.jobs.cli import outbox_app
from datong.loyalty.cli import points_app

app = typer.Typer(
    help="datong (打通): one member per person across every channel.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
keys_app = typer.Typer(help="Encryption keys (kept outside the database).", no_args_is_help=True)
tenant_app = typer.Typer(help="Brands, users and API keys.", no_args_is_help=True)
members_app = typer.Typer(help="Explain, unmerge.", no_args_is_help=True)
export_app = typer.Typer(help="Exports.", no_args_is_help=True)
org_app = typer.Typer(help="Regions, agents, stores, guides.", no_args_is_help=True)
for sub, name in (
    (db_app, "db"),
    (keys_app, "keys"),
    (tenant_app, "tenant"),
    (members_app, "members"),
    (export_app, "export"),
    (org_app, "org"),
    (points_app, "points"),
    (guides_app, "guides"),
    (coupons_app, "coupons"),
    (draws_app, "draws"),
    (spend_claims_app, "spend-claims"),
    (coupon_orders_app, "coupon-orders"),
    (wechat_app, "wechat"),
    (outbox_app, "outbox"),
):
    app.add_typer(sub, name=name)
console = Console()
err = Console(stderr=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the newest version."""
    rt = load_runtime()
    upgrade(rt.settings.database_url)
    console.print(f"schema is current: {rt.db.engine.url.render_as_string(hide_password=True)}")


@keys_app.command("generate")
def keys_generate(out: Annotated[Path, typer.Option(help="where to write the new key file")]) -> None:
    """Create a master key file (mode 600) for DATONG_KEY_FILE. Back it up: without it data is lost."""
    write_key_file(out)
    console.print(f"wrote {out}; set DATONG_KEY_FILE={out}")


@tenant_app.command("create")
def tenant_create(code: str, name: str) -> None:
    from datong.tenancy.service import create_tenant

    rt = load_runtime()
    with rt.db.unit_of_work() as s:
        tenant = create_tenant(s, code=code, name=name)
    console.print(f"brand {code}: {tenant.id}")


@tenant_app.command("add-user")
def tenant_add_user(
    username: str,
    role: str,
    tenant: TenantOpt = None,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True)] = "",
    agent: Annotated[str | None, typer.Option(help="agent code (agent_manager)")] = None,
    store: Annotated[str | None, typer.Option(help="store code (store_manager)")] = None,
    guide: Annotated[str | None, typer.Option(help="guide code (guide)")] = None,
) -> None:
    from datong.org.models import Agent, Guide, Store
    from datong.org.service import _by_code
    from datong.tenancy.service import create_user

    rt = load_runtime()
    tid = tenant_id_of(rt, tenant)
    with rt.db.unit_of_work() as s:
        user = create_user(
            s,
            tenant_id=tid,
            username=username,
            password=password,
            role=role,
            agent_id=_by_code(s, Agent, tid, agent, "agent"),
            store_id=_by_code(s, Store, tid, store, "store"),
            guide_id=_by_code(s, Guide, tid, guide, "guide"),
        )
    console.print(f"user {username} ({role}): {user.id}")


@tenant_app.command("add-api-key")
def tenant_add_api_key(
    name: str,
    scopes: Annotated[str, typer.Option(help="comma-separated, e.g. members:read")],
    tenant: TenantOpt = None,
) -> None:
    from datong.tenancy.service import create_api_key

    rt = load_runtime()
    tid = tenant_id_of(rt, tenant)
    with rt.db.unit_of_work() as s:
        secret, key = create_api_key(
            s, tenant_id=tid, name=name, scopes=[x.strip() for x in scopes.split(",")]
        )
    console.print(f"API key {key.id} — the secret is shown once:\n{secret}")


@org_app.command("load")
def org_load(file: Path, tenant: TenantOpt = None) -> None:
    """Create the regions, agents, stores, guides and shops an org.json describes."""
    from datong.org.service import load_org

    rt = load_runtime()
    tid = tenant_id_of(rt, tenant)
    with rt.db.unit_of_work() as s:
        counts = load_org(s, tenant_id=tid, actor="system:cli", data=json.loads(file.read_text("utf-8")))
    console.print(counts)


@app.command("import")
def import_(
    kind: Annotated[
        str, typer.Argument(help="tmall-orders | jd-orders | wechat-fans | miniprogram-members | members")
    ],
    file: Path,
    tenant: TenantOpt = None,
    source: Annotated[str | None, typer.Option(help="source system name (required for members)")] = None,
    appid: Annotated[str | None, typer.Option(help="WeChat appid (wechat-fans, miniprogram-members)")] = None,
    mapping: Annotated[Path | None, typer.Option(help="JSON: file header → field name")] = None,
    errors: Annotated[Path | None, typer.Option(help="write failed rows here (CSV)")] = None,
) -> None:
    """Import a channel file: streams, resumes after a crash, and the same file twice changes nothing."""
    from datong.jobs.imports import ImportRequest, run_import

    rt = load_runtime()
    tid = tenant_id_of(rt, tenant)
    request = ImportRequest(
        tenant_id=tid,
        kind=kind,
        path=file,
        source=source,
        appid=appid,
        mapping=json.loads(mapping.read_text("utf-8")) if mapping else None,
    )
    with _progress() as bar:
        task = bar.add_task(f"{kind} {file.name}", total=None)
        batch = run_import(
            rt.db,
            rt.keyring,
            request,
            chunk_rows=rt.settings.import_chunk_rows,
            progress=lambda b: bar.update(task, completed=b.rows_seen),
        )
    table = Table(title=f"import {batch.id} — {batch.status}")
    for column in ("rows", "ok", "failed", "duplicate", "members created", "merged", "orders"):
        table.add_column(column, justify="right")
    table.add_row(
        *(
            str(v)
            for v in (
                batch.rows_seen,
                batch.rows_ok,
                batch.rows_failed,
                batch.rows_duplicate,
                batch.members_created,
                batch.members_merged,
                batch.orders_upserted,
            )
        )
    )
    console.print(table)
    if errors is not None:
        written = write_error_report(rt, batch.id, errors)
        console.print(f"{written} failed rows written to {errors}")


def write_error_report(rt: Runtime, batch_id: str, out: Path) -> int:
    """Returns how many failed rows were written."""
    from datong.channels.queries import ERROR_REPORT_HEADER, error_rows

    rows = 0
    with rt.db.reading() as s, out.open("w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.writer(handle)
        writer.writerow(ERROR_REPORT_HEADER)
        for line in error_rows(s, rt.keyring, batch_id):
            writer.writerow(line)
            rows += 1
    return rows


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


@app.command()
def unify(tenant: TenantOpt = None) -> None:
    """Run unification over the whole base: merge members that the rules say are one person."""
    from datong.members.unify import unify_all

    rt = load_runtime()
    tid = tenant_id_of(rt, tenant)
    with _progress() as bar, rt.db.unit_of_work() as s:
        task = bar.add_task("unify", total=None)
        stats = unify_all(
            s,
            tenant_id=tid,
            keyring=rt.keyring,
            actor="system:unify",
            progress=lambda stage, done, total: bar.update(
                task, description=f"unify: {stage}", completed=done, total=total or None
            ),
        )
    console.print(f"merged {stats.members_merged} members ({stats.records_attached_weakly} by weak evidence)")


@members_app.command("explain")
def members_explain(member_id: str, tenant: TenantOpt = None) -> None:
    """Why this member holds each identity and record, and its merges (with their evidence)."""
    from datong.members.queries import explain

    rt = load_runtime()
    tid = tenant_id_of(rt, tenant)
    with rt.db.reading() as s:
        data = explain(s, rt.keyring, tenant_id=tid, member_id=member_id)
    console.print(f"[bold]{data['member_id']}[/] ({data['status']})")
    table = Table(title="identities")
    for column in ("kind", "namespace", "value", "source", "rule"):
        table.add_column(column)
    for i in data["identities"]:
        table.add_row(i["kind"], i["namespace"], i["value"], i["source"], i["rule"])
    console.print(table)
    records = Table(title="source records")
    for column in ("record", "source", "row", "rule"):
        records.add_column(column)
    for r in data["records"]:
        records.add_row(r["id"], r["source"], str(r["row_no"]), r["rule"] or "")
    console.print(records)
    for m in data["merges"]:
        undone = f" (undone {m['undone_at']})" if m["undone_at"] else ""
        console.print(f"merge {m['id']}: {m['absorbed_id']} → {m['survivor_id']} by {m['rule']}{undone}")
        for link in m["evidence"].get("links", []):
            console.print(f"  {link['rule']}: {link['a']} ~ {link['b']} on {link['key'].split('|')[0]}")
    console.print_json(json.dumps({"golden_sources": data["golden_sources"]}, ensure_ascii=False))


@members_app.command("unmerge")
def members_unmerge(
    merge_id: str,
    reason: Annotated[str, typer.Option(help="why the merge was wrong")],
    tenant: TenantOpt = None,
) -> None:
    """Undo a merge: every identity, record, order and consent goes back, and the two stay apart."""
    from datong.members.service import unmerge

    rt = load_runtime()
    tid = tenant_id_of(rt, tenant)
    with rt.db.unit_of_work() as s:
        event = unmerge(
            s, tenant_id=tid, keyring=rt.keyring, merge_id=merge_id, actor="system:cli", reason=reason
        )
    console.print(f"restored {event.absorbed_id}; kept apart from {event.survivor_id}")


@export_app.command("identities")
def export_identities(
    out: Annotated[Path, typer.Option(help="CSV file to write")], tenant: TenantOpt = None
) -> None:
    """One row per identity (source, kind, value, member_id), phones masked: to sync the channels back."""
    from datong.members.queries import export_identities as rows
    from datong.tenancy.service import audit

    rt = load_runtime()
    tid = tenant_id_of(rt, tenant)
    count = 0
    with rt.db.reading() as s, out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source", "kind", "value", "member_id"])
        for row in rows(s, rt.keyring, tenant_id=tid):
            writer.writerow(row)
            count += 1
    with rt.db.unit_of_work() as s:
        audit(
            s,
            tenant_id=tid,
            actor="system:cli",
            action="identities.export",
            object_type="tenant",
            object_id=tid,
            detail={"rows": count, "file": out.name},
        )
    console.print(f"{count} identities written to {out}")


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the API (OpenAPI at /docs)."""
    import uvicorn

    from datong.api.app import create_app

    uvicorn.run(create_app(load_runtime()), host=host, port=port, log_level="info")


@app.command()
def demo(
    people: Annotated[int, typer.Option(help="how many people to generate")] = 50_000,
    workdir: Annotated[Path, typer.Option(help="where the demo keeps its files")] = Path("var/demo"),
    port: int = 8000,
    serve_api: Annotated[bool, typer.Option("--serve/--no-serve")] = True,
) -> None:
    """Create a demo brand with generated data, import and unify it, then serve the API."""
    from datong.demo.run import run_demo

    rt = run_demo(workdir=workdir, people=people, console=console, port=port)
    if serve_api:
        import uvicorn

        from datong.api.app import create_app

        uvicorn.run(create_app(rt), host="127.0.0.1", port=port, log_level="warning")


def main() -> None:
    try:
        app()
    except DatongError as exc:
        field = f" [{exc.field}]" if exc.field else ""
        err.print(f"[red]error{field}:[/] {exc.message}")
        raise SystemExit(2) from exc
