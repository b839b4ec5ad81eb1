"""Fuzz: malformed payloads of every kind in `payloads.KINDS`, mixed with valid jobs.

One pool process with 20 workers takes them all; the scenario waits until nothing is queued or
claimed, or gives up at `timeout_s` (a crash-looping pool never drains). The table of kinds
says, per kind, how many reached the failed list and how many were still queued.
"""

from __future__ import annotations

import random
from pathlib import Path

from bench.chaos.ledger import push
from bench.chaos.payloads import half_emoji_job, malformed_payloads, valid_job
from bench.chaos.report import Outcome
from bench.chaos.stage import Stage

__all__ = ["run"]

VALID_EBOOKS = 5


def run(root: Path, *, malformed: int, valid: int, seed: int, timeout_s: float) -> Outcome:
    """Push everything shuffled, start the pool, account."""
    rng = random.Random(seed)
    flags = ["--latency-s", "0.05"]
    env = {"CONCURRENT_WORKERS": "20"}
    with Stage(root, "fuzz", aof=False, sim_flags=flags, pool_env=env) as stage:
        bad = malformed_payloads(malformed, seed)
        per_ebook = max(1, valid // VALID_EBOOKS)
        items: list[tuple[str, bytes]] = []
        for e in range(VALID_EBOOKS):
            ebook = f"fuzz-ok-{e}"
            stage.pushed.declare(stage.r, ebook, per_ebook)
            # Every fourth valid job carries half an emoji in its text (replaced, then stored).
            items += [
                ("valid", (half_emoji_job if i % 4 == 3 else valid_job)(ebook, i, per_ebook))
                for i in range(per_ebook)
            ]
        items += bad
        rng.shuffle(items)
        for kind, payload in items:
            if kind != "valid":
                stage.pushed.malformed.append((kind, payload))
        push(stage.r, stage.keys, [p for _, p in items])
        stage.start_pool()
        drain_s = stage.drain(timeout_s)
        kinds = len({k for k, _ in bad})
        outcome = stage.outcome(f"{malformed} malformed of {kinds} kinds", drain_s)
        outcome.notes.append(
            f"{malformed} malformed payloads (seed {seed}) and {per_ebook * VALID_EBOOKS} valid "
            f"jobs, shuffled, one LPUSH; one pool process x 20 workers; gave up after "
            f"{timeout_s:.0f} s if not drained."
        )
        return outcome
