"""`weeke db lock/unlock` and `weeke audit verify` as a coordinator runs them."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LAUNCH = ("import sys; sys.path.insert(0, {here!r}); import conftest; "
          "from weeke_pipeline.cli import main; sys.exit(main(sys.argv[1:]))")


def weeke(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    env.pop("WEEKE_DATABASE_URL", None)
    env.pop("DATABASE_URL", None)
    return subprocess.run([sys.executable, "-c", LAUNCH.format(here=str(HERE)), *args,
                           "--data", str(data)], env=env, capture_output=True, text=True,
                          timeout=120)


def test_lock_unlock_and_audit_verify_from_the_cli(tmp_path: Path) -> None:
    data = tmp_path / "data"
    r = weeke("db", "lock", "--reason", "interim analysis", data=data)
    assert r.returncode == 0 and "locked" in r.stdout, r.stderr
    r = weeke("db", "unlock", data=data)
    assert r.returncode == 2 and "--reason" in r.stderr
    r = weeke("db", "unlock", "--reason", "query resolved", data=data)
    assert r.returncode == 0, r.stderr
    r = weeke("audit", "verify", data=data)
    # the keyed chain's first entry (audit.key), the lock, the unlock
    assert r.returncode == 0 and "intact: 3 entries" in r.stdout
    with sqlite3.connect(data / "reading.sqlite3") as conn:
        conn.execute("UPDATE reading_auditentry SET reason = 'nothing' WHERE id = 2")
    r = weeke("audit", "verify", data=data)
    assert r.returncode == 1 and "BROKEN at entry 2" in r.stdout
