"""Import and unify N generated source records; the last line is the figure bench/RESULTS.md records.

    python bench/unify.py --records 1000000 [--database-url URL] [--workdir DIR]

Generation is not timed (it is the input); the timed part is what a brand runs: every import, then
``datong unify``. Peak memory is the process's peak resident set (ru_maxrss), generation included.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

from rich.console import Console


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file in the work dir")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--chunk-rows", type=int, default=5000)
    parser.add_argument(
        "--evaluate", action="store_true", help="also print precision/recall/F1 against truth"
    )
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="datong-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ["DATONG_DATABASE_URL"] = args.database_url or f"sqlite:///{work / 'bench.sqlite3'}"
    os.environ.setdefault("DATONG_MASTER_KEY", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")

    from datong.core.config import Settings
    from datong.core.context import load_runtime
    from datong.core.migrate import upgrade
    from datong.demo.generator import generate_source_records
    from datong.demo.run import _ensure_brand, import_manifest
    from datong.members.unify import unify_all

    console = Console(stderr=True)
    console.print(f"generating {args.records:,} records in {work}")
    manifest = generate_source_records(work / "data", records=args.records)
    rt = load_runtime(Settings())
    upgrade(rt.settings.database_url)
    tenant_id = _ensure_brand(rt, manifest)
    started = time.perf_counter()
    last = [0.0]

    def tick(label: str, batch: object) -> None:
        now = time.perf_counter()
        if now - last[0] > 10:
            last[0] = now
            console.print(f"  {now - started:7.1f}s {label}: {getattr(batch, 'rows_seen', 0):,} rows")

    batches = import_manifest(rt, tenant_id, manifest, on_batch=tick, chunk_rows=args.chunk_rows)
    imported = time.perf_counter()
    with rt.db.unit_of_work() as s:
        stats = unify_all(s, tenant_id=tenant_id, keyring=rt.keyring, actor="system:bench")
    seconds = time.perf_counter() - started
    rows = sum(b.rows_seen for b in batches)
    console.print(
        f"import {imported - started:.1f}s, unify {seconds - (imported - started):.1f}s, "
        f"rows {rows:,}, failed {sum(b.rows_failed for b in batches):,}, batch merges {stats.members_merged}"
    )
    if args.evaluate:
        from datong.demo.evaluate import pairwise_scores
        from datong.members.queries import export_identities

        out = work / "identities.csv"
        import csv

        with rt.db.reading() as s, out.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["source", "kind", "value", "member_id"])
            writer.writerows(export_identities(s, rt.keyring, tenant_id=tenant_id))
        scores = pairwise_scores(manifest.truth, out)
        console.print(f"precision={scores.precision:.4f} recall={scores.recall:.4f} f1={scores.f1:.4f}")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"records={args.records} seconds={seconds:.1f} records_per_s={args.records / seconds:.0f} "
        f"peak_mib={peak_mib:.0f}"
    )


if __name__ == "__main__":
    main()
