"""The bench's multi-process runs: the real supervisor with bench pools as its children
(`bench.supervised`, `bench.multiprocess`), and the steady rate read from Redis samples."""

from __future__ import annotations

import pytest

from bench.completion import steady_rate


def test_steady_rate_is_read_between_the_10th_and_90th_percent_done() -> None:
    # 100 jobs: 10 done at 1.0 s, 90 done at 3.0 s -> 80 pages in 2 s.
    samples = [(0.0, 0), (0.5, 4), (1.0, 10), (2.0, 50), (3.0, 90), (3.5, 100)]
    assert steady_rate(samples, 100) == pytest.approx(40.0)


def test_steady_rate_uses_the_first_sample_past_each_end() -> None:
    samples = [(0.0, 0), (1.0, 20), (2.0, 95)]  # both ends overshoot: 75 pages in 1 s
    assert steady_rate(samples, 100) == pytest.approx(75.0)


def test_steady_rate_needs_two_samples_and_ten_jobs() -> None:
    assert steady_rate([(0.0, 0), (1.0, 100)], 100) is None  # one sample holds both ends
    assert steady_rate([(0.0, 0), (1.0, 5)], 100) is None  # never got there
    assert steady_rate([(0.0, 0), (1.0, 1), (2.0, 9)], 9) is None


def test_two_supervised_bench_pools_finish_every_page_and_stop_cleanly() -> None:
    """`--processes 2`: both children work the one queue; SIGTERM to the supervisor ends it 0."""
    from bench.catalog import OURS
    from bench.multiprocess import run_supervised
    from bench.redis_server import RedisServer

    with RedisServer() as server:
        run = run_supervised(
            server, OURS.target(), processes=2, jobs=300, total_concurrency=20, timeout_s=60
        )
        done = int(server.client.hget("bench:ebook:bench-0:status", "done") or 0)  # one ebook
    assert run["processes"] == 2 and run["concurrency_per_process"] == 10
    assert run["supervisor_exit"] == 0
    assert done == 300
    assert len(run["cpu_s_per_process"]) == 2 and all(c > 0 for c in run["cpu_s_per_process"])
    assert run["jobs_per_s"] > 0 and run["peak_rss_bytes"] > 0
