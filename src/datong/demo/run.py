"""``datong demo``: a demo brand with generated data, imported and unified, ready to serve.

Everything it does is what an operator would do by hand (migrate, create the brand and its users, load
the organisation, import each channel file, run ``unify``), so the demo also exercises the real paths.
Running it again is safe: the generator is deterministic and imports of the same files change nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import select

from datong.channels.models import ImportBatch
from datong.core.config import Settings, get_settings
from datong.core.context import Runtime, load_runtime
from datong.core.crypto import write_key_file
from datong.core.migrate import upgrade
from datong.demo.engagement import run_engagement
from datong.demo.generator import DemoManifest, generate_demo
from datong.demo.program import DEMO_PROGRAM
from datong.jobs.imports import ImportRequest, run_import
from datong.members.unify import UnifyStats, unify_all
from datong.org.models import Agent, Guide, Store
from datong.org.service import load_org
from datong.tenancy.models import Tenant, User
from datong.tenancy.service import create_tenant, create_user

DEMO_PASSWORD = "datong-demo-2026"  # printed on screen: a demo, not a deployment


def demo_runtime(workdir: Path) -> Runtime:
    """Use the operator's settings when given; otherwise a key file and SQLite database in ``workdir``."""
    settings = get_settings()
    if not settings.master_key and not settings.key_file:
        key = workdir / "master.key"
        if not key.exists():
            write_key_file(key)
        os.environ["DATONG_KEY_FILE"] = str(key)
    if "DATONG_DATABASE_URL" not in os.environ:
        os.environ["DATONG_DATABASE_URL"] = f"sqlite:///{workdir / 'datong.sqlite3'}"
    get_settings.cache_clear()
    return load_runtime(Settings())


def import_manifest(
    rt: Runtime,
    tenant_id: str,
    manifest: DemoManifest,
    *,
    on_batch: Callable[[str, ImportBatch], None] | None = None,
    chunk_rows: int | None = None,
) -> list[ImportBatch]:
    """Import every file of a generated data set, in the manifest's order."""
    batches = []
    for item in manifest.files:
        request = ImportRequest(
            tenant_id=tenant_id, kind=item.kind, path=item.path, source=item.source, appid=item.appid
        )
        label = f"{item.kind} {item.path.name}"

        def report(batch: ImportBatch, label: str = label) -> None:
            if on_batch is not None:
                on_batch(label, batch)

        rows = chunk_rows or rt.settings.import_chunk_rows
        batches.append(run_import(rt.db, rt.keyring, request, chunk_rows=rows, progress=report))
    return batches


def _ensure_brand(rt: Runtime, manifest: DemoManifest) -> str:
    import json

    with rt.db.unit_of_work() as s:
        tenant = s.scalar(select(Tenant).where(Tenant.code == manifest.tenant_code))
        if tenant is None:
            data = json.loads(manifest.org.read_text("utf-8"))
            tenant = create_tenant(s, code=manifest.tenant_code, name=data["tenant"]["name"])
            load_org(s, tenant_id=tenant.id, actor="system:demo", data=data)
            _demo_users(s, tenant.id)
        return tenant.id


def _demo_users(s: object, tenant_id: str) -> None:
    from sqlalchemy.orm import Session

    assert isinstance(s, Session)
    agent = s.scalars(select(Agent).where(Agent.tenant_id == tenant_id).order_by(Agent.code)).first()
    store = s.scalars(
        select(Store).where(Store.tenant_id == tenant_id, Store.agent_id.is_not(None)).order_by(Store.code)
    ).first()
    guide = s.scalars(select(Guide).where(Guide.tenant_id == tenant_id).order_by(Guide.code)).first()
    users = [
        ("admin", "hq_admin", {}),
        ("operator", "hq_operator", {}),
        ("agent", "agent_manager", {"agent_id": agent.id if agent else None}),
        ("store", "store_manager", {"store_id": store.id if store else None}),
        ("guide", "guide", {"guide_id": guide.id if guide else None}),
    ]
    for username, role, scope in users:
        create_user(
            s,
            tenant_id=tenant_id,
            username=username,
            password=DEMO_PASSWORD,
            role=role,
            actor="system:demo",
            **scope,
        )


def run_demo(*, workdir: Path, people: int, console: Console, port: int = 8000) -> Runtime:
    workdir.mkdir(parents=True, exist_ok=True)
    rt = demo_runtime(workdir)
    upgrade(rt.settings.database_url)
    console.print(f"[bold]1/4[/] generating {people:,} people into {workdir / 'data'}")
    manifest = generate_demo(workdir / "data", people=people)
    tenant_id = _ensure_brand(rt, manifest)
    console.print(f"[bold]2/4[/] importing {manifest.records:,} rows from {len(manifest.files)} files")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        tasks = {
            f"{f.kind} {f.path.name}": bar.add_task(f"{f.kind} {f.path.name}", total=f.records)
            for f in manifest.files
        }
        batches = import_manifest(
            rt, tenant_id, manifest, on_batch=lambda label, b: bar.update(tasks[label], completed=b.rows_seen)
        )
    failed = sum(b.rows_failed for b in batches)
    console.print(f"[bold]3/4[/] unifying (failed rows kept with their errors: {failed})")
    with rt.db.unit_of_work() as s:
        stats: UnifyStats = unify_all(s, tenant_id=tenant_id, keyring=rt.keyring, actor="system:demo")
    console.print(f"      batch unify merged {stats.members_merged} more members")
    pos_key = _demo_points(rt, tenant_id, console)
    run_engagement(rt, tenant_id, console)
    with rt.db.reading() as s:
        users = list(
            s.scalars(
                select(
                    User.username,
                )
                .where(User.tenant_id == tenant_id)
                .order_by(User.username)
            )
        )
    console.print(f"[bold]4/4[/] serving the API on http://127.0.0.1:{port} (OpenAPI: /docs)")
    console.print(
        f"      log in: brand [bold]{manifest.tenant_code}[/], users {', '.join(users)}, "
        f"password [bold]{DEMO_PASSWORD}[/]"
    )
    console.print(
        f"      curl -s -X POST http://127.0.0.1:{port}/api/v1/auth/login -H 'content-type: application/json'"
        " "
        f'-d \'{{"tenant":"demo","username":"admin","password":"{DEMO_PASSWORD}"}}\''
    )
    console.print(f"      identities export: datong export identities --out {workdir / 'identities.csv'}")
    if pos_key:
        console.print(f"      POS API key (shown once): {pos_key}")
    return rt


def _demo_points(rt: Runtime, tenant_id: str, console: Console) -> str | None:
    """Load the demo program, migrate the POS balances, earn for completed imported orders, and create an
    API key a POS would use. Returns the key's secret the first time, None when the demo was run before."""
    from datong.jobs.points import run_in_batches
    from datong.loyalty.migration import migrate_balances
    from datong.loyalty.programs import load_program
    from datong.loyalty.service import earn_completed_orders
    from datong.tenancy import rules
    from datong.tenancy.models import ApiKey
    from datong.tenancy.service import create_api_key

    with console.status("      points: migrating the POS cards' opening balances"), rt.db.unit_of_work() as s:
        program = load_program(s, tenant_id=tenant_id, data=DEMO_PROGRAM, actor="system:demo")
        migrated = migrate_balances(s, program=program, actor="system:demo")
    console.print(
        f"      points: {migrated.points:,} opening points migrated from {migrated.cards:,} POS cards"
    )
    with console.status("      points: earning for completed Tmall and JD orders") as status:
        _orders, earned = run_in_batches(
            rt.db,
            tenant_id=tenant_id,
            program_code=None,
            step=lambda s, prog, after: earn_completed_orders(
                s, program=prog, actor="system:demo", after_id=after
            ),
            on_batch=lambda orders, _points: status.update(
                f"      points: earning for completed Tmall and JD orders ({orders:,} so far)"
            ),
        )
    console.print(f"      points: {earned:,} earned by completed Tmall and JD orders")
    with rt.db.unit_of_work() as s:
        if s.scalar(select(ApiKey.id).where(ApiKey.tenant_id == tenant_id, ApiKey.name == "demo POS")):
            return None
        secret, _key = create_api_key(
            s,
            tenant_id=tenant_id,
            name="demo POS",
            scopes=[
                rules.MEMBERS_READ,
                rules.MEMBERS_WRITE,
                rules.POINTS_READ,
                rules.POINTS_WRITE,
                rules.COUPONS_READ,
                rules.COUPONS_WRITE,
            ],
            actor="system:demo",
        )
    return secret
