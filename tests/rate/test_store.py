"""The study database: schema version, transactions, concurrent writers (threads and processes)."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading

import pytest

from foleygen.errors import DataError
from foleygen.rate.store import DB_NAME, SCHEMA_VERSION, Store


def _assigned(store, rater_name):
    rid = store.query("SELECT id FROM raters WHERE name = ?", (rater_name,))[0]["id"]
    sql = """SELECT a.trial_id FROM assignments a JOIN trials t ON t.id = a.trial_id
             WHERE a.rater_id = ? AND t.kind = 'mos' ORDER BY a.position"""
    trials = [r["trial_id"] for r in store.query(sql, (rid,))]
    return rid, trials


def _write_answers(db_path, rater_name, offset, n):
    """Worker (thread or process): answer ``n`` MOS trials, every question, one transaction each."""
    store = Store(db_path)
    rid, trials = _assigned(store, rater_name)
    keys = [q["key"] for q in store.meta()["questions"]]
    for i in range(offset, offset + n):
        store.save_answers(rid, trials[i % len(trials)], {k: 1 + (i % 5) for k in keys}, elapsed_ms=i)
    store.close()


def test_schema_version_and_meta(study):
    store = Store(study / DB_NAME)
    assert store.query("SELECT version FROM schema_version")[0][0] == SCHEMA_VERSION
    assert store.query("PRAGMA journal_mode")[0][0] == "wal"
    assert {"title", "questions", "admin_secret", "checks"} <= set(store.meta())
    with sqlite3.connect(study / DB_NAME) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(DataError, match="schema version 99"):
        Store(study / DB_NAME)


def test_not_a_database(tmp_path):
    (tmp_path / DB_NAME).write_text("hello")
    with pytest.raises(DataError, match="not a study database"):
        Store(tmp_path / DB_NAME)
    with pytest.raises(DataError, match="no study database"):
        Store(tmp_path / "missing.db")


def test_a_failed_transaction_leaves_nothing(study):
    store = Store(study / DB_NAME)
    rid, trials = _assigned(store, "alice")
    with pytest.raises(sqlite3.IntegrityError):
        # the second row breaks a foreign key: the first must not stay either
        store.save_answers(rid, trials[0], {"quality": 3}, None)
        with store.write() as c:
            c.execute("INSERT INTO answers (rater_id, trial_id, question, value, answered_at) VALUES (?, ?, 'q', 1, 0)",
                      (rid, trials[1]))  # fmt: skip
            c.execute(
                "INSERT INTO answers (rater_id, trial_id, question, value, answered_at) VALUES (999, 1, 'q', 1, 0)"
            )
    rows = store.query("SELECT trial_id, question FROM answers")
    assert [tuple(r) for r in rows] == [(trials[0], "quality")]


def test_concurrent_threads(study):
    db = study / DB_NAME
    threads = [threading.Thread(target=_write_answers, args=(db, name, 0, 12)) for name in ("alice", "bob")]
    threads += [threading.Thread(target=_write_answers, args=(db, "alice", 0, 12))]  # same rows: upserts
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store = Store(db)
    assert store.integrity_ok()
    assert len(store.query("SELECT * FROM answers")) == 2 * 12 * 3


def test_concurrent_processes(study):
    db = study / DB_NAME
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_answers, args=(db, name, 0, 12)) for name in ("alice", "bob")]
    procs += [ctx.Process(target=_write_answers, args=(db, "alice", 6, 6))]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    store = Store(db)
    assert store.integrity_ok()
    assert len(store.query("SELECT * FROM answers")) == 2 * 12 * 3
    assert len({r["answered_at"] for r in store.query("SELECT answered_at FROM answers")}) >= 2
