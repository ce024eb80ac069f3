"""The reading tests again on PostgreSQL (WEEKE_TEST_POSTGRES_URL, set by scripts/services.sh).

Django is configured once per process, so the suite (without the browser test, and without
the durability test, which covers both databases itself) runs in a
child pytest with WEEKE_READING_BACKEND=postgres; its session fixture creates and drops a
throwaway database on that server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("WEEKE_READING_BACKEND") == "postgres",
                    reason="already the PostgreSQL run")
def test_reading_suite_on_postgresql() -> None:
    url = os.environ.get("WEEKE_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("WEEKE_TEST_POSTGRES_URL not set (source scripts/services.sh as root)")
    env = {**os.environ, "WEEKE_READING_BACKEND": "postgres"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(HERE),
         "--deselect", f"{HERE / 'test_reading_browser.py'}",
         # runs on both databases itself
         "--deselect", f"{HERE / 'test_reading_durability.py'}",
         # a live server on its own SQLite behind nginx: no database of this run involved
         "--deselect", f"{HERE / 'test_reading_https.py'}",
         "-k", "not test_reading_suite_on_postgresql"],
        env=env, capture_output=True, text=True, timeout=600, cwd=HERE.parents[1])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout.splitlines()[-1]
