"""How well did unification do? Pairwise precision, recall and F1 against the demo's truth.

``pairwise_scores(truth_csv, identities_csv)`` reads the generator's ``truth.csv``
(``source,kind,value,person_id``) and datong's identity export (``source,kind,value,member_id``).
An identity is matched by ``(source, kind, value)``. Over the matched identities, a *true pair*
is two identities of one person, a *predicted pair* two identities of one member, and a *correct
pair* both. Pairs are counted from cluster sizes, never listed: a cluster of n identities holds
n(n-1)/2 pairs, so true = Σ C(persons' sizes), predicted = Σ C(members' sizes), correct = Σ C(cells
of the person × member table). The counting runs in DuckDB, so 20 million identities fit.

Phones. The export masks them (``138****1234``). A phone identity is matched through its mask
(the truth's phone masked the same way, or the export's if it is in clear) only where that mask is
unique within its source on both sides; the other phone identities are reported as *skipped*, not
guessed. Nothing is lost by that: every record in the demo also carries a key that is never masked
(Tmall nick, JD pin, openid, card number), so every record still takes part through that key; a
skipped phone only leaves out whether that phone itself landed on the right member. An identity
whose key names more than one person (or member) on one side is skipped the same way.

Truth identities the export lacks are *missing* (a bad row the importer rejected, or an identity
it did not store); export identities the truth lacks are *unknown*. Neither enters the pairs.

    python -m datong.demo.evaluate TRUTH IDENTITIES
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import duckdb

_MASK = "substr(value, 1, 3) || '****' || substr(value, 8, 4)"


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float
    f1: float
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int
    identities_matched: int
    identities_missing: int
    identities_skipped: int = 0  # phones whose mask is not unique, keys naming two clusters
    identities_unknown: int = 0  # in the export, not in the truth

    def report(self) -> str:
        return "\n".join(
            [
                f"precision           {self.precision:.6f}",
                f"recall              {self.recall:.6f}",
                f"f1                  {self.f1:.6f}",
                f"true pairs          {self.true_pairs:,}",
                f"predicted pairs     {self.predicted_pairs:,}",
                f"correct pairs       {self.correct_pairs:,}",
                f"identities matched  {self.identities_matched:,}",
                f"identities missing  {self.identities_missing:,}",
                f"identities skipped  {self.identities_skipped:,}",
                f"identities unknown  {self.identities_unknown:,}",
            ]
        )


def _keyed(con: duckdb.DuckDBPyConnection, name: str, path: Path, cluster: str) -> None:
    """``name``: (source, kind, key, cluster, ok). ``ok`` is false where the key is ambiguous."""
    con.execute(
        f"""
        CREATE TEMP TABLE {name}_raw AS
        SELECT source, kind, value, {cluster} AS cluster
        FROM read_csv(?, header = true, delim = ',', quote = '"', escape = '"', all_varchar = true)
        """,
        [str(path)],
    )
    # A phone in clear is masked here; one already masked (has a '*') is its own key.
    con.execute(
        f"""
        CREATE TEMP TABLE {name} AS
        WITH k AS (
            SELECT DISTINCT source, kind,
                   CASE WHEN kind = 'phone' AND strpos(value, '*') = 0 THEN {_MASK} ELSE value END AS key,
                   cluster
            FROM {name}_raw
        )
        SELECT source, kind, key, cluster,
               count(*) OVER (PARTITION BY source, kind, key) = 1 AS ok
        FROM k
        """
    )


def pairwise_scores(truth_csv: Path, identities_csv: Path) -> Scores:
    con = duckdb.connect()
    try:
        _keyed(con, "t", truth_csv, "person_id")
        _keyed(con, "e", identities_csv, "member_id")
        # A phone mask counts as a key only if the raw truth has one phone behind it in that source.
        con.execute(
            f"""
            UPDATE t SET ok = false
            WHERE kind = 'phone' AND (source, key) IN (
                SELECT source, {_MASK} FROM t_raw WHERE kind = 'phone'
                GROUP BY ALL HAVING count(DISTINCT value) > 1)
            """
        )
        con.execute(
            """
            CREATE TEMP TABLE m AS
            SELECT t.cluster AS person, e.cluster AS member
            FROM t JOIN e USING (source, kind, key)
            WHERE t.ok AND e.ok
            """
        )
        pairs = con.execute(
            """
            WITH p AS (SELECT count(*) AS n FROM m GROUP BY person),
                 b AS (SELECT count(*) AS n FROM m GROUP BY member),
                 c AS (SELECT count(*) AS n FROM m GROUP BY person, member)
            SELECT
              (SELECT coalesce(sum(n * (n - 1) // 2), 0) FROM p),
              (SELECT coalesce(sum(n * (n - 1) // 2), 0) FROM b),
              (SELECT coalesce(sum(n * (n - 1) // 2), 0) FROM c),
              (SELECT count(*) FROM m)
            """
        ).fetchone()
        # Every truth identity ends up in exactly one of: matched, missing, skipped.
        counts = con.execute(
            """
            SELECT
              count(*) FILTER (WHERE t.ok AND NOT EXISTS (
                  SELECT 1 FROM e WHERE e.source = t.source AND e.kind = t.kind AND e.key = t.key)),
              count(*) FILTER (WHERE NOT t.ok OR EXISTS (SELECT 1 FROM e
                  WHERE e.source = t.source AND e.kind = t.kind AND e.key = t.key AND NOT e.ok)),
              (SELECT count(*) FROM e WHERE NOT EXISTS (
                  SELECT 1 FROM t WHERE e.source = t.source AND e.kind = t.kind AND e.key = t.key))
            FROM t
            """
        ).fetchone()
    finally:
        con.close()
    assert pairs is not None and counts is not None
    true_pairs, predicted, correct, matched = (int(v) for v in pairs)
    precision = correct / predicted if predicted else 1.0
    recall = correct / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scores(precision, recall, f1, true_pairs, predicted, correct, matched, *(int(v) for v in counts))


def main(argv: list[str] | None = None) -> None:
    summary = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m datong.demo.evaluate", description=summary)
    parser.add_argument("truth", type=Path, help="the generator's truth.csv")
    parser.add_argument("identities", type=Path, help="datong's export: source,kind,value,member_id")
    args = parser.parse_args(argv)
    print(pairwise_scores(args.truth, args.identities).report())


if __name__ == "__main__":
    main()
