"""One SQLite database file shared by the queue, the job store, results and schedules.

Several processes may open the same file: WAL lets readers run beside the single writer,
and every claim is one atomic statement. ``synchronous=NORMAL`` keeps commits durable
across process crashes (``kill -9``); a power cut may lose the last few commits.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS queue (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id      TEXT    NOT NULL,
    lane         TEXT    NOT NULL,
    payload      BLOB    NOT NULL,
    visible_at   REAL    NOT NULL,
    lease_owner  TEXT,
    deliveries   INTEGER NOT NULL DEFAULT 0,
    token        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS queue_visible ON queue (lane, visible_at, seq);

CREATE TABLE IF NOT EXISTS jobs (
    id            TEXT    PRIMARY KEY,
    tenant        TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    request       TEXT    NOT NULL,
    progress      TEXT,
    attempts      INTEGER NOT NULL,
    max_attempts  INTEGER NOT NULL,
    created_at    REAL    NOT NULL,
    started_at    REAL,
    finished_at   REAL,
    expires_at    REAL    NOT NULL,
    error         TEXT,
    result        TEXT,
    files_purged  INTEGER NOT NULL DEFAULT 0,
    message       BLOB,
    fence         INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    lane          TEXT    NOT NULL DEFAULT 'interactive',
    due_at        REAL,
    timeout_s     REAL,
    callback_url  TEXT,
    attempt_errors TEXT,
    next_attempt_at REAL,
    message_token INTEGER NOT NULL DEFAULT 0,
    version       INTEGER NOT NULL DEFAULT 1
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS jobs_by_tenant ON jobs (tenant, id);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (tenant, status, id);
CREATE INDEX IF NOT EXISTS jobs_by_kind ON jobs (tenant, kind, id);
CREATE INDEX IF NOT EXISTS jobs_by_expiry ON jobs (expires_at);
CREATE INDEX IF NOT EXISTS jobs_unfinished ON jobs (status)
    WHERE status IN ('queued', 'retrying', 'running');

CREATE TABLE IF NOT EXISTS results (
    task_id     TEXT PRIMARY KEY,
    result      BLOB,
    progress    BLOB,
    expires_at  REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS results_by_expiry ON results (expires_at);

CREATE TABLE IF NOT EXISTS schedules (
    schedule_id  TEXT PRIMARY KEY,
    schedule     TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS idempotency_keys (
    tenant       TEXT NOT NULL,
    key          TEXT NOT NULL,
    job_id       TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    expires_at   REAL NOT NULL,
    PRIMARY KEY (tenant, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_keys_by_job ON idempotency_keys (job_id);

CREATE TABLE IF NOT EXISTS workers (
    consumer     TEXT PRIMARY KEY,
    task_names   TEXT NOT NULL,
    seen_at      REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS schedule_ticks (
    schedule_id  TEXT NOT NULL,
    tick         TEXT NOT NULL,
    fired_at     REAL NOT NULL,
    PRIMARY KEY (schedule_id, tick)
) WITHOUT ROWID;

-- The webhook outbox (brokers/webhooks.py): the trigger writes an entry in the very
-- transaction that finishes a job with a callback_url, whichever statement does it.
CREATE TABLE IF NOT EXISTS webhooks (
    job_id      TEXT    PRIMARY KEY,
    seq         INTEGER NOT NULL,
    state       TEXT    NOT NULL,
    due_at      REAL,
    tries       INTEGER NOT NULL DEFAULT 0,
    deliveries  TEXT    NOT NULL DEFAULT '[]'
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS webhooks_due ON webhooks (due_at) WHERE due_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS webhook_secrets (
    tenant  TEXT PRIMARY KEY,
    secret  TEXT NOT NULL
) WITHOUT ROWID;
"""

TRIGGERS = """
-- Every update of a job bumps its version (brokers.events), so no writer has to: an UPDATE
-- that sets version itself is left alone, and the trigger's own UPDATE does not fire it
-- again (recursive triggers are off).
CREATE TRIGGER IF NOT EXISTS jobs_version AFTER UPDATE ON jobs
WHEN NEW.version = OLD.version
BEGIN
    UPDATE jobs SET version = OLD.version + 1 WHERE id = NEW.id;
END;

-- The webhook outbox's entry is written in the transaction that finishes the job.
CREATE TRIGGER IF NOT EXISTS webhooks_on_finish AFTER UPDATE OF status ON jobs
WHEN NEW.callback_url IS NOT NULL
    AND NEW.status IN ('succeeded', 'failed', 'cancelled')
    AND OLD.status NOT IN ('succeeded', 'failed', 'cancelled')
BEGIN
    INSERT INTO webhooks (job_id, seq, state, due_at) VALUES (NEW.id, 1, 'pending', 0)
    ON CONFLICT (job_id) DO UPDATE SET
        seq = seq + 1, state = 'pending', due_at = 0, tries = 0, deliveries = '[]';
END;
CREATE TRIGGER IF NOT EXISTS webhooks_on_delete AFTER DELETE ON jobs
BEGIN
    DELETE FROM webhooks WHERE job_id = OLD.id;
END;
"""
"""Created after MIGRATIONS, as they name columns an older file gains there."""

DEFAULT_LANE = "interactive"
LANES = (DEFAULT_LANE, "bulk")
"""Claimed in this order: an interactive job never waits behind bulk work."""

MIGRATIONS = (
    ("jobs", "message", "ALTER TABLE jobs ADD COLUMN message BLOB"),
    ("jobs", "fence", "ALTER TABLE jobs ADD COLUMN fence INTEGER NOT NULL DEFAULT 0"),
    (
        "jobs",
        "cancel_requested",
        "ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0",
    ),
    ("jobs", "lane", "ALTER TABLE jobs ADD COLUMN lane TEXT NOT NULL DEFAULT 'interactive'"),
    ("jobs", "due_at", "ALTER TABLE jobs ADD COLUMN due_at REAL"),
    ("jobs", "timeout_s", "ALTER TABLE jobs ADD COLUMN timeout_s REAL"),
    ("jobs", "callback_url", "ALTER TABLE jobs ADD COLUMN callback_url TEXT"),
    ("jobs", "attempt_errors", "ALTER TABLE jobs ADD COLUMN attempt_errors TEXT"),
    ("jobs", "next_attempt_at", "ALTER TABLE jobs ADD COLUMN next_attempt_at REAL"),
    (
        "jobs",
        "message_token",
        "ALTER TABLE jobs ADD COLUMN message_token INTEGER NOT NULL DEFAULT 0",
    ),
    ("queue", "token", "ALTER TABLE queue ADD COLUMN token INTEGER NOT NULL DEFAULT 0"),
    ("jobs", "version", "ALTER TABLE jobs ADD COLUMN version INTEGER NOT NULL DEFAULT 1"),
)
"""Columns added after the first release: (table, column, statement adding it)."""

CHECKPOINT_SECONDS = 0.1


class Database:
    """A lazily opened connection to the embedded database, owned by one event loop.

    A thread checkpoints (copies the WAL back into the file, with two fsyncs) every 100 ms.
    Otherwise the commit that takes the WAL past 1000 pages does it, and the event loop
    stands still for the fsyncs (several ms each on a real disk). Under light and bursty
    load the thread keeps the WAL short and the loop never checkpoints; under sustained
    writes its passive checkpoints cannot finish, so commits still checkpoint (and reset
    the WAL) every 1000 pages, as before, only with less left to copy.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None
        self._checkpointer: threading.Thread | None = None
        self._stop = threading.Event()
        self.last_write_error: tuple[float, str] | None = None
        """When the last write failed and why; cleared by the next write that commits."""

    @property
    def connection(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = self._open()
        return self._connection

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=10.0
        )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA busy_timeout=10000")
        connection.executescript(SCHEMA)
        _migrate(connection)
        connection.executescript(TRIGGERS)
        self._stop = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_forever, args=(self._stop,), name="offload-checkpoint",
            daemon=True,
        )  # fmt: skip
        self._checkpointer.start()
        return connection

    def _checkpoint_forever(self, stop: threading.Event) -> None:
        connection = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
        try:
            while not stop.wait(CHECKPOINT_SECONDS):
                # Busy or gone: the next round tries again.
                with contextlib.suppress(sqlite3.Error):
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            connection.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run statements as one write transaction, taking the write lock up front."""
        conn = self.connection
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # A failed COMMIT (disk full, I/O error) can leave the transaction open.
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as error:
            self.last_write_error = (time.time(), str(error))
            raise
        self.last_write_error = None

    def data_version(self) -> int:
        """A number that changes whenever another connection commits to the file."""
        row = self.connection.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    def close(self) -> None:
        self._stop.set()
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _migrate(connection: sqlite3.Connection) -> None:
    for table, column, statement in MIGRATIONS:
        columns = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        if column not in columns:
            connection.execute(statement)
    # Before lanes had names, every message waited in one lane called "default".
    connection.execute("UPDATE queue SET lane = ? WHERE lane = 'default'", (DEFAULT_LANE,))
