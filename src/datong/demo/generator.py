"""Demo data with ground truth: a brand's organisation and its members as five channels export them.

``generate_demo(out_dir, people=N)`` writes, deterministically for a seed and in constant memory:

* ``org.json``: the brand, regions, agents, 40 stores in 12 cities with guides, the online shops
  (schema in :mod:`datong.demo.org`).
* ``tmall/ExportOrderList_<n>.csv``: the classic Tmall order report, **GBK**, 100,000 rows per file.
* ``jd/orders.csv``: the JD POP export, **UTF-8 with BOM** (as Excel saves it), one row per order line.
* ``wechat/fans.jsonl``: official-account ``user/info`` records, one JSON object per line (UTF-8).
* ``miniprogram/members.csv``: mini-program members (UTF-8).
* ``pos/pos_direct.csv`` (UTF-8 with BOM), ``pos/pos_franchise.csv`` (GBK, agent A01's own system),
  ``pos/pos_counter.csv`` (UTF-8, the mall counters' CRM): store member cards, each with its headers.
* the truth, which no importer may read: ``truth.csv`` (``source,kind,value,person_id``: every
  identity, normalised as an importer would), ``truth_records.csv`` (``file,row_no,person_id``: every
  data row, 1-based), ``truth_noise.csv`` (``file,row_no,field,noise,clean``: every spoiled value) and
  ``truth_cases.csv`` (``case,person_id,other_person_id,detail``: households and changed phones).
* ``manifest.json``: the :class:`DemoManifest`.

A person is in 1-5 channels (60% one, 25% two, 9% three, 4% four, 2% five). Noise rates are
:data:`datong.demo.rows.RATES`. Hard cases: 3% of draws start a household, a second person at the
same address, both holding a card at one store; in 40% of households the second card was opened
with the first person's phone under another name (in the truth that phone identity belongs to its
owner; the two must stay two people). 2% of people changed phone: the mini-program has the new
one, the POS cards the old one, so only unionid (to the WeChat fan) or name and birthday tie them.
Rows within each file are shuffled in blocks of 4,096 so one buyer's orders do not sit together.

Speed: people are drawn in chunks of 5,000 (:mod:`datong.demo.chunk`) that run in worker processes
and are stitched in order; the output is the same bytes whatever the number of workers.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import IO, Any

from datong.demo.channels import _tables
from datong.demo.chunk import CHUNK, ChunkResult, Shared, generate_chunk
from datong.demo.org import (
    JD_SHOP,
    MINIPROGRAM_APPID,
    TENANT_CODE,
    TMALL_SHOP,
    WECHAT_APPID,
    build_org,
    write_org,
)
from datong.demo.pools import FastRandom, Phones, Pools
from datong.demo.rows import JD_COLUMNS, MINIPROGRAM_COLUMNS, POS_COLUMNS, TMALL_COLUMNS, csv_line

TMALL_ROWS_PER_FILE = 100_000
# sink: (path, header, encoding, import kind, extra manifest fields); the order is the import order.
_SINKS: dict[str, tuple[str, tuple[str, ...] | None, str, str, dict[str, str]]] = {
    "pos_direct": ("pos/pos_direct.csv", POS_COLUMNS["pos_direct"], "utf-8-sig", "members", {}),
    "pos_franchise": ("pos/pos_franchise.csv", POS_COLUMNS["pos_franchise"], "gbk", "members", {}),
    "pos_counter": ("pos/pos_counter.csv", POS_COLUMNS["pos_counter"], "utf-8", "members", {}),
    "miniprogram": ("miniprogram/members.csv", MINIPROGRAM_COLUMNS, "utf-8", "miniprogram-members",
                    {"appid": MINIPROGRAM_APPID}),
    "wechat": ("wechat/fans.jsonl", None, "utf-8", "wechat-fans", {"appid": WECHAT_APPID}),
    "tmall": ("tmall/ExportOrderList_{n}.csv", TMALL_COLUMNS, "gbk", "tmall-orders",
              {"shop_id": TMALL_SHOP[0]}),
    "jd": ("jd/orders.csv", JD_COLUMNS, "utf-8-sig", "jd-orders", {"shop_id": JD_SHOP[0]}),
}  # fmt: skip


@dataclass(frozen=True)
class DemoFile:
    path: Path
    kind: str  # tmall-orders | jd-orders | wechat-fans | miniprogram-members | members
    source: str  # the truth's source: tmall, jd, wechat, miniprogram, pos_direct, pos_franchise, pos_counter
    encoding: str  # utf-8 | utf-8-sig | gbk
    records: int
    appid: str | None = None  # wechat-fans, miniprogram-members
    shop_id: str | None = None  # tmall-orders, jd-orders


@dataclass
class DemoManifest:
    out_dir: Path
    seed: int
    tenant_code: str
    org: Path
    files: list[DemoFile]  # in import order: store cards, mini-program, fans, then orders
    people: int  # people with at least one row
    records: int  # data rows over every channel file
    orders: int
    order_lines: int
    identities: int  # rows of truth.csv
    truth: Path
    truth_records: Path
    truth_noise: Path
    truth_cases: Path
    records_by_source: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Paths relative to ``out_dir``: the folder can move, and two runs give the same bytes."""

        def rel(value: Any) -> Any:
            if isinstance(value, Path):
                return value.relative_to(self.out_dir).as_posix() if value != self.out_dir else "."
            if isinstance(value, dict):
                return {k: rel(v) for k, v in value.items()}
            if isinstance(value, list):
                return [rel(v) for v in value]
            return value

        return {k: rel(v) for k, v in asdict(self).items() if k != "out_dir"}


class _FinalSink:
    """One channel's final file(s): a header, then each chunk's rows in chunk order, numbered."""

    def __init__(self, out: _Final, name: str) -> None:
        self.out, self.name = out, name
        self.pattern, self.header, self.encoding, self.kind, self.extra = _SINKS[name]
        self.per_file = TMALL_ROWS_PER_FILE if name == "tmall" else 0
        self.files: list[DemoFile] = []
        self.fh: IO[bytes] | None = None
        self.rows = 0
        self._open()

    def _open(self) -> None:
        self._close_file()
        self.rel = self.pattern.format(n=len(self.files) + 1)
        path = self.out.dir / self.rel
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(path, "wb")  # noqa: SIM115
        if self.header is not None:
            self.fh.write((csv_line(self.header) + "\r\n").encode(self.encoding))
        self.files.append(DemoFile(path, self.kind, self.name, self.encoding, 0, **self.extra))
        self.rows = 0

    def _close_file(self) -> None:
        if self.fh is not None:
            self.fh.close()
            last = self.files[-1]
            self.files[-1] = DemoFile(last.path, last.kind, last.source, last.encoding, self.rows,
                                      last.appid, last.shop_id)  # fmt: skip

    def append(self, folder: Path) -> None:
        records, noise_out = self.out.records, self.out.noise
        with (
            open(folder / f"{self.name}.data", "rb") as data,
            open(folder / f"{self.name}.meta", encoding="utf-8") as meta,
        ):
            if not self.per_file:
                assert self.fh is not None
                shutil.copyfileobj(data, self.fh)  # bytes already in the file's encoding
            lines = iter(data) if self.per_file else None
            for info in meta:
                if lines is not None:  # Tmall: split into files of 100,000 rows, as the export does
                    if self.rows == self.per_file:
                        self._open()
                    assert self.fh is not None
                    self.fh.write(next(lines))  # b"\n" never occurs inside a GBK or UTF-8 character
                self.rows += 1
                pid, _, rest = info.rstrip("\n").partition("\t")
                records.write(f"{self.rel},{self.rows},{pid}\n")
                if rest:
                    cells = rest.split("\t")
                    for i in range(0, len(cells), 3):
                        noise_out.write(csv_line((self.rel, str(self.rows), *cells[i : i + 3])) + "\n")

    def close(self) -> list[DemoFile]:
        self._close_file()
        return self.files


class _Final:
    """The finished folder: channel files and the truth, fed one chunk at a time in chunk order."""

    def __init__(self, out_dir: Path) -> None:
        self.dir = out_dir
        for stale in (out_dir / "tmall").glob("ExportOrderList_*.csv"):
            stale.unlink()  # a smaller run must not leave a bigger run's extra files behind
        self.records = self._open("truth_records.csv", "file,row_no,person_id")
        self.truth = self._open("truth.csv", "source,kind,value,person_id")
        self.noise = self._open("truth_noise.csv", "file,row_no,field,noise,clean")
        self.cases = self._open("truth_cases.csv", "case,person_id,other_person_id,detail")
        self.sinks = {name: _FinalSink(self, name) for name in _SINKS}
        self.people = self.records_total = self.orders = self.order_lines = self.identities = 0

    def _open(self, name: str, header: str) -> IO[str]:
        fh = open(self.dir / name, "w", encoding="utf-8", newline="")  # noqa: SIM115
        fh.write(header + "\n")
        return fh

    def add(self, res: ChunkResult) -> None:
        for sink in self.sinks.values():
            sink.append(res.folder)
        for part, fh in (("truth.part", self.truth), ("cases.part", self.cases)):
            with open(res.folder / part, encoding="utf-8") as src:
                shutil.copyfileobj(src, fh)
        self.people += res.people
        self.records_total += res.records
        self.orders += res.orders
        self.order_lines += res.order_lines
        self.identities += res.identities
        shutil.rmtree(res.folder)

    def close(self) -> list[DemoFile]:
        for fh in (self.records, self.truth, self.noise, self.cases):
            fh.close()
        return [f for sink in self.sinks.values() for f in sink.close()]


_SHARED: Shared | None = None  # a worker's copy, set once by the pool's initializer


def _init_worker(shared: Shared) -> None:
    global _SHARED
    _SHARED = shared


def _work(chunk: int, first: int, last: int, folder: str) -> ChunkResult:
    assert _SHARED is not None
    return generate_chunk(_SHARED, chunk, first, last, Path(folder))


def _chunks(shared: Shared, work: Path, bounds: Callable[[int], tuple[int, int]], count: int | None,
            workers: int, budget: Callable[[], int | None]) -> Generator[ChunkResult]:  # fmt: skip
    """Chunk results in chunk order; with workers, a few chunks run ahead of the one being stitched.

    In one process each chunk gets what is left of the record budget; workers cannot know it, so
    the caller writes the chunk where the budget ends again (a chunk is deterministic)."""
    if workers <= 1:
        chunk = 0
        while count is None or chunk < count:
            yield generate_chunk(shared, chunk, *bounds(chunk), work / str(chunk), budget())
            chunk += 1
        return
    # fork starts workers at once with the pools already in memory; elsewhere spawn pickles them.
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(shared,)) as pool:
        pending: deque[AsyncResult[ChunkResult]] = deque()
        chunk = 0
        while True:
            while len(pending) < workers + 1 and (count is None or chunk < count):
                pending.append(pool.apply_async(_work, (chunk, *bounds(chunk), str(work / str(chunk)))))
                chunk += 1
            if not pending:
                return
            yield pending.popleft().get()


def generate_demo(
    out_dir: Path,
    *,
    people: int | None,
    seed: int = 7,
    progress: Callable[[int], None] | None = None,
    records: int | None = None,
    workers: int | None = None,
) -> DemoManifest:
    """Write the demo into ``out_dir``. ``people`` bounds the people, ``records`` the data rows in all
    (``people=None``: as many people as it takes); ``workers`` defaults to the CPUs (at most 4)."""
    if people is None and records is None:
        raise ValueError("give people or records")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = FastRandom(seed)
    pools = Pools(rng, seed)
    phones = Phones(rng)
    staff = iter(range(10**6))
    org = build_org(
        rng,
        lambda: rng.choice(pools.surnames).text + rng.choice(pools.female + pools.male).text,
        lambda: phones.phone(next(staff) * 4 + 3),  # staff phones: their own entity range
    )
    write_org(org, out_dir / "org.json")
    shared = Shared(seed, pools, phones, org)
    _tables()  # built before the workers fork, so each inherits it instead of building its own
    work = out_dir / ".chunks"
    shutil.rmtree(work, ignore_errors=True)
    count = None if people is None else -(-people // CHUNK)

    def bounds(chunk: int) -> tuple[int, int]:
        first = chunk * CHUNK
        return first, first + CHUNK if people is None else min(first + CHUNK, people)

    if workers is None:  # one chunk's worth (about 10,000 rows) is not worth starting processes for
        small = count == 1 or (records is not None and records <= 2 * CHUNK)
        workers = 1 if small else min(os.cpu_count() or 1, 4)
    final = _Final(out_dir)

    def budget() -> int | None:
        return None if records is None else records - final.records_total

    results = _chunks(shared, work, bounds, count, workers, budget)
    for res in results:
        if records is not None and final.records_total + res.records > records:
            # The budget ends inside this chunk: write it again, stopping at the budget.
            shutil.rmtree(res.folder)
            res = generate_chunk(shared, res.chunk, *bounds(res.chunk), work / f"{res.chunk}-last",
                                 budget=records - final.records_total)  # fmt: skip
        final.add(res)
        if progress:
            progress(final.people)
        if records is not None and final.records_total >= records:
            break
    results.close()  # stops the workers still running ahead
    shutil.rmtree(work, ignore_errors=True)
    files = final.close()
    by_source: dict[str, int] = {}
    for f in files:
        by_source[f.source] = by_source.get(f.source, 0) + f.records
    manifest = DemoManifest(
        out_dir=out_dir,
        seed=seed,
        tenant_code=TENANT_CODE,
        org=out_dir / "org.json",
        files=files,
        people=final.people,
        records=final.records_total,
        orders=final.orders,
        order_lines=final.order_lines,
        identities=final.identities,
        truth=out_dir / "truth.csv",
        truth_records=out_dir / "truth_records.csv",
        truth_noise=out_dir / "truth_noise.csv",
        truth_cases=out_dir / "truth_cases.csv",
        records_by_source=by_source,
    )
    (out_dir / "manifest.json").write_text(json.dumps(manifest.to_json(), indent=2) + "\n", encoding="utf-8")
    return manifest


def generate_source_records(
    out_dir: Path, *, records: int, seed: int = 7, progress: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> DemoManifest:  # fmt: skip
    """Exactly ``records`` data rows over the five channels (about 2.1 per person), for benchmarks."""
    return generate_demo(out_dir, people=None, seed=seed, progress=progress, records=records, workers=workers)


def main(argv: list[str] | None = None) -> None:
    summary = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m datong.demo.generator", description=summary)
    parser.add_argument("out_dir", type=Path)
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--people", type=int)
    size.add_argument("--records", type=int)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    manifest = generate_demo(args.out_dir, people=args.people, records=args.records, seed=args.seed,
                             workers=args.workers)  # fmt: skip
    took = time.perf_counter() - started
    size_mb = sum(f.path.stat().st_size for f in manifest.files) / 2**20
    print(f"{manifest.people:,} people, {manifest.records:,} records, {manifest.identities:,} identities, "
          f"{size_mb:,.1f} MiB of channel files in {took:.1f} s "
          f"({manifest.people / took:,.0f} people/s, {manifest.records / took:,.0f} records/s)")  # fmt: skip


if __name__ == "__main__":
    main()
