"""What only the embedded store promises; the shared contract is in test_store_contract.py."""

from __future__ import annotations

from pathlib import Path

from brokers.sqlite.database import Database
from brokers.sqlite.store import SqliteJobStore


async def test_listing_uses_an_index_not_a_scan(tmp_path: Path) -> None:
    store = SqliteJobStore(Database(tmp_path / "offload.db"))
    plan = store.database.connection.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE tenant = ? AND status = ? "
        "AND id < ? ORDER BY id DESC LIMIT 51",
        ("local", "queued", "f" * 32),
    ).fetchall()
    details = " ".join(str(row[-1]) for row in plan)
    assert "USING INDEX jobs_by_status" in details or "USING COVERING INDEX" in details, details
    assert "TEMP B-TREE" not in details, details
