"""Durability: a server killed mid-save loses nothing it acknowledged.

A real `weeke serve` (child process) takes autosaves over HTTP from 8 simulated readers' tabs
(logged-in sessions with CSRF, 4 readers x 2 cases), each saving as fast as it can. Right after
the 40th acknowledged save, with other saves still in flight, the server gets SIGKILL (no
shutdown code runs). After a restart on the same database every draft holds exactly its last
acknowledged save, or the save that was in flight when the server died (committed, answer
lost): never an older version, never a mixture. Each draft version has its audit entry (the
update and its audit entry commit together), the audit chain verifies, the sessions survive,
and SQLite's integrity check passes. Runs on SQLite and, with WEEKE_TEST_POSTGRES_URL set, on
PostgreSQL.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pytest
from conftest import write_study
from live import Client, Server, cli_env, weeke

PASSWORD = "durability-test-password-1"
READERS = 4
KILL_AFTER = 40  # acknowledged saves before the kill

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Command-line database arguments, and a way to open the database directly."""
    data = tmp_path / "data"
    if request.param == "sqlite":
        yield {"args": ["--data", str(data)],
               "connect": lambda: sqlite3.connect(data / "reading.sqlite3")}
        return
    base = os.environ.get("WEEKE_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("WEEKE_TEST_POSTGRES_URL not set (source scripts/services.sh as root)")
    import psycopg

    name = "weeke_durability_" + secrets.token_hex(4)
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(base)._replace(path="/" + name))
    try:
        yield {"args": ["--data", str(data), "--database-url", url],
               "connect": lambda: psycopg.connect(url)}
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def payload(form_items: list[tuple[str, int, bool]], rng: np.random.Generator) -> dict:  # type: ignore[type-arg]
    """A random partial draft (the kind autosave sends while a reader works)."""
    items = {}
    for item_id, max_extent, lateralised in form_items:
        if rng.random() < 0.7:
            e = int(rng.integers(0, max_extent + 1))
            items[item_id] = {"extent": e} | ({"laterality": int(rng.integers(1, 3))}
                                              if lateralised and e > 0 else {})
    return items


class Tab:
    """One reader's open form page autosaving one case until the connection fails."""

    def __init__(self, url: str, cookies: dict[str, str], code: str, seed: int,
                 form_items: list[tuple[str, int, bool]]) -> None:
        self.client = Client(url)
        self.client.cookies = dict(cookies)
        self.code, self.rng, self.form_items = code, np.random.default_rng(seed), form_items
        self.in_flight: tuple[int, dict] | None = None  # type: ignore[type-arg]
        self.n_acked = 0
        self.error: str = ""
        status, body = self.client.get(f"/api/case/{code}/read")  # opens (creates) the draft
        assert status == 200, body
        self.acked: tuple[int, dict] = (json.loads(body)["version"], json.loads(body)["items"])  # type: ignore[type-arg]

    def run(self, counter: list[int], lock: threading.Lock) -> None:
        version = self.acked[0]
        while True:
            items = payload(self.form_items, self.rng)
            self.in_flight = (version + 1, items)
            try:
                status, answer = self.client.post_json(f"/api/case/{self.code}/read",
                                                       {"items": items, "version": version})
            except (OSError, http.client.HTTPException) as exc:
                self.error = type(exc).__name__
                return
            if status != 200:
                self.error = f"HTTP {status}: {answer}"
                self.in_flight = None
                return
            version = answer["version"]
            self.acked, self.in_flight = (version, items), None
            self.n_acked += 1
            with lock:
                counter[0] += 1


def test_killed_server_loses_no_acknowledged_save(database: dict[str, Any],
                                                  tmp_path: Path) -> None:
    from weeke_pipeline.scoring import load_form

    form = load_form("weeke-consensus-2025")
    form_items = [(i.id, i.max_extent, i.lateralised) for i in form.items]
    env = cli_env(WEEKE_PASSWORD=PASSWORD)
    db = database["args"]
    readers = [f"reader{n}" for n in range(1, READERS + 1)]
    study = write_study(tmp_path / "study", tuple(f"DUR{n}" for n in range(READERS)))
    weeke(*(["users", "add", r, "--role", "reader", *db] for r in readers),
          ["cases", "import", str(study), *db], env=env)

    server = Server(db, env)
    tabs: list[Tab] = []
    try:
        for r in readers:
            client = Client(server.url)
            client.login(r, PASSWORD)
            page = client.get("/worklist/")[1].decode()  # (the "next case" link repeats one)
            codes = list(dict.fromkeys(re.findall(r'href="/case/([\w-]+)/"', page)))
            assert len(codes) == 2, codes
            tabs += [Tab(server.url, client.cookies, code, len(tabs), form_items)
                     for code in codes]
            client.close()
        counter, lock = [0], threading.Lock()
        threads = [threading.Thread(target=t.run, args=(counter, lock), daemon=True)
                   for t in tabs]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 120
        while ((counter[0] < KILL_AFTER or min(t.n_acked for t in tabs) < 2)
               and time.monotonic() < deadline):
            time.sleep(0.002)
        server.kill()
        for t in threads:
            t.join(timeout=30)
    finally:
        server.stop()
    assert counter[0] >= KILL_AFTER and min(t.n_acked for t in tabs) >= 2, (
        "the saves did not get going: " + repr([(t.n_acked, t.error) for t in tabs]))
    assert all(t.error and "HTTP" not in t.error for t in tabs), [t.error for t in tabs]

    # restart on the same database; the sessions (stored in the database) still work
    server = Server(db, env)
    try:
        committed_in_flight = 0
        for tab in tabs:
            client = Client(server.url)
            client.cookies = dict(tab.client.cookies)
            status, body = client.get(f"/api/case/{tab.code}/read")
            assert status == 200, body
            stored = json.loads(body)
            acked_version, acked_items = tab.acked
            if tab.in_flight and stored["version"] == tab.in_flight[0]:
                assert stored["items"] == tab.in_flight[1], "a mixed, partial save"
                committed_in_flight += 1
            else:
                assert stored["version"] == acked_version, (
                    f"{tab.code}: stored version {stored['version']}, acknowledged "
                    f"{acked_version}: an acknowledged save was lost")
                assert stored["items"] == acked_items
            client.close()
    finally:
        server.stop()
    print(f"{counter[0]} acknowledged saves, {sum(t.in_flight is not None for t in tabs)} in "
          f"flight at the kill ({committed_in_flight} of those committed)")

    assert "audit trail intact" in weeke(["audit", "verify", *db], env=env)
    with closing(database["connect"]()) as conn:
        rows = conn.execute(
            "SELECT r.version, (SELECT COUNT(*) FROM reading_auditentry a WHERE "
            "a.action = 'read.update' AND a.object_id = CAST(r.id AS TEXT)) FROM reading_read r"
        ).fetchall()
        assert len(rows) == len(tabs)
        # version 1 is the empty draft; every later version is one save with its audit entry
        assert all(version - 1 == n_audit for version, n_audit in rows), rows
        if isinstance(conn, sqlite3.Connection):
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
