"""The study database: one SQLite file, ``STUDY/study.db``.

Durability is SQLite's: the journal is WAL with ``synchronous=FULL``, so an answer whose transaction
committed is on disk before the server replies, and a server killed at any moment (SIGKILL included)
leaves a consistent database holding every committed answer. Every write goes through
:meth:`Store.write` (one process-wide lock, then ``BEGIN IMMEDIATE``): the one writer path. Several
processes may open the same study; SQLite's own file locks (with a busy timeout) serialise them.

Tables (schema version :data:`SCHEMA_VERSION`, recorded in ``schema_version``):

* ``meta``: key -> JSON value (title, questions, checks, admin secret, seed...).
* ``systems`` (name, role: system | reference | anchor), ``videos`` (stem, duration).
* ``media``: one muxed clip per (video, system); ``key`` is the opaque random id the web page uses,
  ``file`` the name inside ``STUDY/media`` (never taken from a request).
* ``trials``: ``mos`` (one clip) or ``ab`` (two clips); ``is_check`` marks reference-vs-anchor A/B trials.
* ``raters`` (name, secret token), ``assignments`` (each rater's order of trials, A/B side swaps).
* ``answers``: one row per (rater, trial, question) with the time it was stored (UTC seconds) and how
  long the rater spent on the trial. For A/B the value is 0 when the trial's ``media_a`` was
  preferred, 1 for ``media_b`` (whatever side each was shown on).
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from foleygen.errors import DataError

SCHEMA_VERSION = 1
DB_NAME = "study.db"
MEDIA_DIR = "media"

_SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE systems (
    id INTEGER PRIMARY KEY,
    name TEXT UNIQUE NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('system', 'reference', 'anchor'))
);
CREATE TABLE videos (id INTEGER PRIMARY KEY, stem TEXT UNIQUE NOT NULL, duration REAL NOT NULL);
CREATE TABLE media (
    id INTEGER PRIMARY KEY,
    key TEXT UNIQUE NOT NULL,
    video_id INTEGER NOT NULL REFERENCES videos (id),
    system_id INTEGER NOT NULL REFERENCES systems (id),
    file TEXT UNIQUE NOT NULL,
    UNIQUE (video_id, system_id)
);
CREATE TABLE trials (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('mos', 'ab')),
    media_a INTEGER NOT NULL REFERENCES media (id),
    media_b INTEGER REFERENCES media (id),
    is_check INTEGER NOT NULL DEFAULT 0,
    CHECK ((kind = 'mos') = (media_b IS NULL))
);
CREATE TABLE raters (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, token TEXT UNIQUE NOT NULL,
                     created REAL NOT NULL);
CREATE TABLE assignments (
    rater_id INTEGER NOT NULL REFERENCES raters (id),
    position INTEGER NOT NULL,
    trial_id INTEGER NOT NULL REFERENCES trials (id),
    swapped INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (rater_id, position),
    UNIQUE (rater_id, trial_id)
);
CREATE TABLE answers (
    id INTEGER PRIMARY KEY,
    rater_id INTEGER NOT NULL REFERENCES raters (id),
    trial_id INTEGER NOT NULL REFERENCES trials (id),
    question TEXT NOT NULL,
    value INTEGER NOT NULL,
    answered_at REAL NOT NULL,
    elapsed_ms INTEGER,
    UNIQUE (rater_id, trial_id, question)
);
"""


def new_secret() -> str:
    """A URL-safe random secret (128 bits) for rater tokens and the admin page."""
    return secrets.token_urlsafe(16)


class Store:
    """An open study database. Safe to share between threads; see the module docstring."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError("no study database here (create one with `foleygen rate create`)", self.path)
        self._local = threading.local()
        self._write_lock = threading.Lock()
        try:
            row = self._conn().execute("SELECT version FROM schema_version").fetchone()
        except sqlite3.DatabaseError as err:
            raise DataError(f"not a study database ({err})", self.path) from None
        if row is None or row[0] != SCHEMA_VERSION:
            found = None if row is None else row[0]
            raise DataError(f"study schema version {found}, this foleygen reads {SCHEMA_VERSION}", self.path)

    @classmethod
    def create(cls, path: str | os.PathLike[str], meta: dict[str, Any]) -> Store:
        """A new, empty study database at ``path`` (which must not exist) holding ``meta``."""
        path = Path(path)
        if path.exists():
            raise DataError("a study database already exists here", path)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            conn.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()]
            )
            conn.execute("COMMIT")
        finally:
            conn.close()
        return cls(path)

    # -- connections -------------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        """This thread's connection (autocommit mode: transactions are explicit)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # a committed answer survives power loss too
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """The one writer path: a transaction that commits on success and rolls back on any error."""
        with self._write_lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        """Rows of a read-only statement (a consistent snapshot)."""
        return self._conn().execute(sql, params).fetchall()

    # -- meta ----------------------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        """All ``meta`` entries, decoded."""
        return {r["key"]: json.loads(r["value"]) for r in self.query("SELECT key, value FROM meta")}

    def set_meta(self, key: str, value: Any) -> None:
        """Store one ``meta`` entry (JSON-encodable)."""
        with self.write() as c:
            c.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    # -- set-up ----------------------------------------------------------------------------------------
    def add_system(self, name: str, role: str) -> int:
        """Insert a system; returns its id."""
        with self.write() as c:
            return c.execute("INSERT INTO systems (name, role) VALUES (?, ?)", (name, role)).lastrowid

    def add_video(self, stem: str, duration: float) -> int:
        """Insert a video; returns its id."""
        with self.write() as c:
            return c.execute("INSERT INTO videos (stem, duration) VALUES (?, ?)", (stem, duration)).lastrowid

    def add_media(self, video_id: int, system_id: int, file: str) -> int:
        """Register ``STUDY/media/<file>`` as the clip of (video, system); returns its id."""
        if Path(file).name != file or file.startswith("."):
            raise DataError("a media entry must be a plain file name inside the study's media folder", file)
        with self.write() as c:
            return c.execute(
                "INSERT INTO media (key, video_id, system_id, file) VALUES (?, ?, ?, ?)",
                (secrets.token_hex(12), video_id, system_id, file),
            ).lastrowid

    def add_trial(self, kind: str, media_a: int, media_b: int | None = None, is_check: bool = False) -> int:
        """Insert a trial (``mos``: one clip; ``ab``: two); returns its id."""
        with self.write() as c:
            return c.execute(
                "INSERT INTO trials (kind, media_a, media_b, is_check) VALUES (?, ?, ?, ?)",
                (kind, media_a, media_b, int(is_check)),
            ).lastrowid

    def add_rater(self, name: str, order: list[tuple[int, bool]]) -> str:
        """A new rater with their trial ``order`` (trial id, A/B sides swapped); returns their token."""
        token = new_secret()
        with self.write() as c:
            if c.execute("SELECT 1 FROM raters WHERE name = ?", (name,)).fetchone():
                raise DataError(f"rater {name!r} already exists", self.path)
            rid = c.execute(
                "INSERT INTO raters (name, token, created) VALUES (?, ?, ?)", (name, token, time.time())
            ).lastrowid
            c.executemany(
                "INSERT INTO assignments (rater_id, position, trial_id, swapped) VALUES (?, ?, ?, ?)",
                [(rid, pos, trial, int(swapped)) for pos, (trial, swapped) in enumerate(order)],
            )
        return token

    # -- serving -----------------------------------------------------------------------------------------
    def rater_by_token(self, token: str) -> sqlite3.Row | None:
        """The rater whose token this is, or None."""
        if not token or len(token) > 64:
            return None
        rows = self.query("SELECT id, name, token FROM raters WHERE token = ?", (token,))
        return rows[0] if rows else None

    def raters(self) -> list[sqlite3.Row]:
        """All raters (id, name, token, created), in creation order."""
        return self.query("SELECT id, name, token, created FROM raters ORDER BY id")

    def assignment(self, rater_id: int, position: int) -> sqlite3.Row | None:
        """The trial at ``position`` of this rater's order, with its clips' keys, or None."""
        rows = self.query(
            """SELECT a.position, a.swapped, t.id AS trial_id, t.kind, ma.key AS key_a, mb.key AS key_b
               FROM assignments a JOIN trials t ON t.id = a.trial_id
               JOIN media ma ON ma.id = t.media_a LEFT JOIN media mb ON mb.id = t.media_b
               WHERE a.rater_id = ? AND a.position = ?""",
            (rater_id, position),
        )
        return rows[0] if rows else None

    def progress_of(self, rater_id: int) -> tuple[int, int, int | None]:
        """(trials answered, trials assigned, first unanswered position or None when done)."""
        row = self.query(
            """SELECT COUNT(*) AS total,
                      SUM(EXISTS (SELECT 1 FROM answers x WHERE x.rater_id = a.rater_id AND x.trial_id = a.trial_id))
                        AS done,
                      MIN(CASE WHEN NOT EXISTS (SELECT 1 FROM answers x WHERE x.rater_id = a.rater_id
                          AND x.trial_id = a.trial_id) THEN a.position END) AS next
               FROM assignments a WHERE a.rater_id = ?""",
            (rater_id,),
        )[0]
        return int(row["done"] or 0), int(row["total"]), row["next"]

    def save_answers(self, rater_id: int, trial_id: int, values: dict[str, int], elapsed_ms: int | None) -> None:
        """Store all questions of one trial in one transaction (all or nothing); a repeat replaces them."""
        now = time.time()
        with self.write() as c:
            c.executemany(
                """INSERT INTO answers (rater_id, trial_id, question, value, answered_at, elapsed_ms)
                   VALUES (?, ?, ?, ?, ?, ?)
                   ON CONFLICT (rater_id, trial_id, question)
                   DO UPDATE SET value = excluded.value, answered_at = excluded.answered_at,
                                 elapsed_ms = excluded.elapsed_ms""",
                [(rater_id, trial_id, q, int(v), now, elapsed_ms) for q, v in values.items()],
            )

    def media_file_for(self, rater_id: int, key: str) -> Path | None:
        """The file of clip ``key`` when it is in one of this rater's trials, else None.

        The name comes from the database, never from the request, and must still resolve inside
        ``STUDY/media`` (a tampered database cannot point outside it either).
        """
        if not key or len(key) > 64 or not key.isalnum():
            return None
        rows = self.query(
            """SELECT m.file FROM media m WHERE m.key = ? AND EXISTS (
                   SELECT 1 FROM assignments a JOIN trials t ON t.id = a.trial_id
                   WHERE a.rater_id = ? AND (t.media_a = m.id OR t.media_b = m.id))""",
            (key, rater_id),
        )
        if not rows:
            return None
        root = (self.path.parent / MEDIA_DIR).resolve()
        path = (root / rows[0]["file"]).resolve()
        return path if path.parent == root and path.is_file() else None

    # -- analysis -------------------------------------------------------------------------------------------
    def answer_rows(self) -> list[dict[str, Any]]:
        """Every answer joined with what it was about (one dict per row; A/B rows name both systems)."""
        rows = self.query(
            """SELECT r.name AS rater, x.trial_id AS trial, t.kind, t.is_check, a.position, a.swapped, v.stem AS video,
                      x.question, x.value, x.answered_at, x.elapsed_ms,
                      sa.name AS system_a, sa.role AS role_a, sb.name AS system_b, sb.role AS role_b
               FROM answers x JOIN raters r ON r.id = x.rater_id JOIN trials t ON t.id = x.trial_id
               JOIN assignments a ON a.rater_id = x.rater_id AND a.trial_id = x.trial_id
               JOIN media ma ON ma.id = t.media_a JOIN videos v ON v.id = ma.video_id
               JOIN systems sa ON sa.id = ma.system_id
               LEFT JOIN media mb ON mb.id = t.media_b LEFT JOIN systems sb ON sb.id = mb.system_id
               ORDER BY x.rater_id, a.position, x.question"""
        )
        return [dict(r) for r in rows]

    def systems(self) -> list[sqlite3.Row]:
        """All systems (id, name, role), in creation order."""
        return self.query("SELECT id, name, role FROM systems ORDER BY id")

    def integrity_ok(self) -> bool:
        """SQLite's full integrity check plus ours: every answered trial has all of its questions."""
        if self.query("PRAGMA integrity_check")[0][0] != "ok":
            return False
        meta = self.meta()
        expected = {"mos": len(meta.get("questions", [])), "ab": 1}
        for row in self.query(
            """SELECT t.kind, COUNT(*) AS n FROM answers x JOIN trials t ON t.id = x.trial_id
               GROUP BY x.rater_id, x.trial_id"""
        ):
            if row["n"] != expected[row["kind"]]:
                return False
        return True
