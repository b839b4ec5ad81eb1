"""`ebook-pool run` tunes the garbage collector before its loop starts (pool_app.gc_tuning)."""

from __future__ import annotations

import subprocess
import sys

from pool_app.gc_tuning import YOUNG_THRESHOLD


def test_tune_gc_freezes_start_up_and_raises_the_young_threshold() -> None:
    # In a child: freezing the test process's objects would outlive this test.
    code = (
        "import gc; from pool_app.gc_tuning import tune_gc; "
        "before = gc.get_freeze_count(); tune_gc(); "
        "print(before, gc.get_freeze_count() > 1000, gc.get_threshold()[0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert out == ["0", "True", str(YOUNG_THRESHOLD)]
