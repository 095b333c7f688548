"""One chunk of people, written to a scratch folder; :mod:`datong.demo.generator` stitches chunks together.

A chunk is ``CHUNK`` consecutive person numbers. Everything random in it comes from a generator
seeded by (seed, chunk number) and every counter from the chunk's own range, so a chunk's output
depends on nothing else: chunks run in parallel processes, in any order, and the stitched result is
the same bytes as one process writing them in turn.

Per sink the chunk writes ``<sink>.data`` (rows in the file's encoding, no header) and
``<sink>.meta`` (one UTF-8 line per row: the person id, then tab-separated (column, noise, clean)
triples), plus ``truth.part`` and ``cases.part``, already in their final form.
"""

from __future__ import annotations

import random
from bisect import bisect
from dataclasses import dataclass, field
from datetime import date
from itertools import accumulate, combinations
from pathlib import Path
from typing import IO, Any

from datong.demo.channels import Channels
from datong.demo.org import CITIES, City, Org, Store
from datong.demo.pools import FastRandom, NameForm, Phones, Pools
from datong.demo.rows import Ident, Noise, Person, csv_line

CHUNK = 5_000  # people per chunk: small enough to balance two cores on 50,000 people
SHUFFLE_BLOCK = 4096
CHANNELS = ("tmall", "jd", "wechat", "miniprogram", "pos")
_CHANNEL_WEIGHTS = (0.30, 0.12, 0.22, 0.14, 0.22)
_CHANNEL_COUNTS = (0.60, 0.25, 0.09, 0.04, 0.02)  # P(a person is in 1, 2, ... 5 channels)
HOUSEHOLD_RATE, SHARED_PHONE_RATE, CHANGED_PHONE_RATE = 0.03, 0.40, 0.02
_BIRTH_FIRST, _BIRTH_LAST = date(1962, 1, 1).toordinal(), date(2007, 12, 31).toordinal()
_YEAR_ONE = [date(y, 1, 1).toordinal() for y in range(1962, 2009)]
SINK_ENCODING = {"tmall": "gbk", "pos_franchise": "gbk"}  # the rest UTF-8 (a BOM goes on the header only)
SINKS = ("pos_direct", "pos_franchise", "pos_counter", "miniprogram", "wechat", "tmall", "jd")


@dataclass
class Shared:
    """What every chunk reads and none changes: built once from the seed, sent to each worker."""

    seed: int
    pools: Pools
    phones: Phones
    org: Org


@dataclass
class ChunkResult:
    chunk: int
    folder: Path
    rows: dict[str, int] = field(default_factory=dict)
    people: int = 0
    orders: int = 0
    order_lines: int = 0
    identities: int = 0

    @property
    def records(self) -> int:
        return sum(self.rows.values())


class _People:
    """Draws people and households; ``idx`` is the person's number, the source of every unique value."""

    def __init__(self, rng: random.Random, shared: Shared, channels: Channels) -> None:
        self.rng, self.pools, self.phones, self.ch = rng, shared.pools, shared.phones, channels
        subsets, weights = [], []
        for size, p_size in enumerate(_CHANNEL_COUNTS, start=1):
            combos = list(combinations(range(len(CHANNELS)), size))
            products = [_product(_CHANNEL_WEIGHTS[i] for i in c) for c in combos]
            for combo, w in zip(combos, products, strict=True):
                subsets.append(frozenset(CHANNELS[i] for i in combo))
                weights.append(p_size * w / sum(products))
        self.subsets, self.subset_cum = subsets, list(accumulate(weights))
        by_city = shared.org.stores_by_city
        self.store_cities = [c for c in CITIES if c.name in by_city]
        self.store_city_cum = list(accumulate(c.weight for c in self.store_cities))
        # Households need a store whose export shows an address (the counters' CRM has none).
        self.home_stores = [s for s in channels.exportable if s.pos_source in ("pos_direct", "pos_franchise")]

    def person(self, idx: int, female: bool | None = None, home: Person | None = None,
               store: Store | None = None, surname: NameForm | None = None, birthday: int = 0,
               ) -> Person:  # fmt: skip
        rnd, pools = self.rng.random, self.pools
        channels = self.subsets[bisect(self.subset_cum, rnd() * self.subset_cum[-1])]
        if store:
            channels = channels | {"pos"}
        if female is None:
            female = rnd() < 0.62  # a fashion brand: more women than men
        city: City
        if home is not None:
            city = home.city
        elif store is not None:
            city = store.city
        elif "pos" in channels:
            city = self.store_cities[bisect(self.store_city_cum, rnd() * self.store_city_cum[-1])]
        else:
            city = self.ch.random_city()
        if not birthday:  # ages peak around thirty: a triangle over birth years 1962-2008
            a, b = rnd(), rnd()
            birthday = _YEAR_ONE[int((a + b) / 2 * (len(_YEAR_ONE) - 1))] + int(rnd() * 365)
        names = pools.female if female else pools.male
        return Person(
            pid=f"P{idx + 1:08d}",
            idx=idx,
            female=female,
            surname=surname or pools.surnames[int(rnd() * len(pools.surnames))],
            given=names[int(rnd() * len(names))],
            birthday=min(max(birthday, _BIRTH_FIRST), _BIRTH_LAST),
            phone=self.phones.phone(idx * 4),
            city=city,
            district=home.district if home else city.districts[int(rnd() * len(city.districts))][0],
            address=home.address if home else pools.address(self.rng),
            channels=channels,
            home_store=store,
        )

    def unit(self, idx: int, room: int) -> tuple[list[Person], list[tuple[str, str, str, str]]]:
        """One person, or a household of two when ``room`` allows; with the hard cases it plants."""
        rng = self.rng
        if room >= 2 and rng.random() < HOUSEHOLD_RATE:
            store = rng.choice(self.home_stores)
            a = self.person(idx, store=store)
            if rng.random() < 0.7:  # a couple: two surnames, ages close
                b = self.person(idx + 1, female=not a.female, home=a, store=store,
                                birthday=a.birthday + rng.randint(-2200, 2200))  # fmt: skip
            else:  # parent and child: one surname, a generation apart
                gap = rng.randint(24 * 365, 32 * 365)
                older = a.birthday - gap >= _BIRTH_FIRST
                b = self.person(idx + 1, home=a, store=store, surname=a.surname,
                                birthday=a.birthday - gap if older else a.birthday + gap)  # fmt: skip
            detail = "same_address"
            if rng.random() < SHARED_PHONE_RATE:
                b.phone_owner = a
                detail = f"shared_phone:{store.pos_source}"
            return [a, b], [("household", a.pid, b.pid, detail)]
        p = self.person(idx)
        if rng.random() < CHANGED_PHONE_RATE:
            p.new_phone = self.phones.phone(idx * 4 + 1)
            p.channels = p.channels | {"pos", "wechat", "miniprogram"}
            return [p], [("changed_phone", p.pid, "", f"{p.phone}->{p.new_phone}")]
        return [p], []


def _product(values: Any) -> float:
    result = 1.0
    for v in values:
        result *= v
    return result


class _ChunkSink:
    """Rows wait in a block, are shuffled (one buyer's orders must not sit together), then written."""

    def __init__(self, folder: Path, name: str, rng: random.Random, eol: str) -> None:
        enc = SINK_ENCODING.get(name, "utf-8")
        # errors="strict": a character outside GBK must fail loudly, never be replaced silently.
        self.data = open(folder / f"{name}.data", "w", encoding=enc, errors="strict", newline="")  # noqa: SIM115
        self.meta = open(folder / f"{name}.meta", "w", encoding="utf-8", newline="")  # noqa: SIM115
        self.rng, self.eol = rng, eol
        self.buf: list[tuple[list[str] | str, str, Noise]] = []
        self.rows = 0

    def flush(self) -> None:
        self.rng.shuffle(self.buf)
        eol, write, meta = self.eol, self.data.write, self.meta.write
        for row, pid, noise in self.buf:
            # A str is pre-rendered: a JSON line, or a Tmall row with its bare ="…" guard.
            write((row if isinstance(row, str) else csv_line(row)) + eol)
            meta(pid + "".join(f"\t{c}\t{k}\t{v}" for c, k, v in noise) + "\n" if noise else pid + "\n")
        self.rows += len(self.buf)
        self.buf.clear()

    def close(self) -> None:
        self.flush()
        self.data.close()
        self.meta.close()


class _ChunkOut:
    def __init__(self, folder: Path, chunk: int, seed: int, budget: int | None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        shuffle = random.Random(f"{seed}:{chunk}:shuffle")  # str seeds are stable across runs
        self.sinks = {n: _ChunkSink(folder, n, shuffle, "\n" if n == "wechat" else "\r\n") for n in SINKS}
        self.truth: IO[str] = open(folder / "truth.part", "w", encoding="utf-8", newline="")  # noqa: SIM115
        self.cases: IO[str] = open(folder / "cases.part", "w", encoding="utf-8", newline="")  # noqa: SIM115
        self.budget = budget
        self.seen: set[tuple[str, ...]] = set()  # identities of the current unit (a household at most)
        self.unit_pids: set[str] = set()
        self.identities = 0

    def emit(self, sink: str, row: list[str] | str, pid: str, noise: Noise, ids: list[Ident]) -> bool:
        if self.budget is not None:
            if self.budget <= 0:
                return False
            self.budget -= 1
        # Identity values are unique per person by construction; only a household shares one (a
        # phone), so remembering the current unit's identities is enough to write each one once.
        for ident in ids:
            key = ident[:3]
            if key not in self.seen:
                self.seen.add(key)
                self.truth.write(csv_line(ident) + "\n")
                self.identities += 1
        self.unit_pids.add(pid)
        out = self.sinks[sink]
        out.buf.append((row, pid, noise))
        if len(out.buf) >= SHUFFLE_BLOCK:
            out.flush()
        return True

    def close(self) -> dict[str, int]:
        for sink in self.sinks.values():
            sink.close()
        self.truth.close()
        self.cases.close()
        return {n: s.rows for n, s in self.sinks.items()}


def generate_chunk(shared: Shared, chunk: int, first: int, last: int, folder: Path,
                   budget: int | None = None) -> ChunkResult:  # fmt: skip
    """People ``first`` to ``last - 1`` into ``folder``; stop early once ``budget`` rows are written."""
    rng = FastRandom(f"{shared.seed}:{chunk}")
    out = _ChunkOut(folder, chunk, shared.seed, budget)
    channels = Channels(rng, shared.pools, shared.phones, shared.org, out.emit, chunk)
    maker = _People(rng, shared, channels)
    result = ChunkResult(chunk, folder)
    idx = first
    while idx < last and not channels.stopped:
        out.seen.clear()
        out.unit_pids.clear()
        unit, cases = maker.unit(idx, room=last - idx)
        for person in unit:
            channels.person(person)
        idx += len(unit)
        written = out.unit_pids
        result.people += len(written)
        for case in cases:
            if case[1] in written and (not case[2] or case[2] in written):
                out.cases.write(csv_line(case) + "\n")
    result.rows = out.close()
    result.orders, result.order_lines, result.identities = (
        channels.orders,
        channels.order_lines,
        out.identities,
    )
    return result
