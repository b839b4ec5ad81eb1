"""One runner module per peer queue library, each run by `bench.harness` in the peer's own venv.

Runners import only the standard library, `bench.child` and their own library: they run with
the redis-py (or coredis) that library pins, not ours.
"""

import asyncio
from collections.abc import Awaitable
from typing import Any

#: The result every peer's job function returns: a page of about the size our pool stores.
PAGE_TEXT = "# A page\n\n" + "Lorem ipsum dolor sit amet. " * 8


async def gather_chunked(coros: list[Awaitable[Any]], chunk: int = 500) -> None:
    """Await coroutines `chunk` at a time: enqueueing 20,000 jobs one by one takes too long."""
    for start in range(0, len(coros), chunk):
        await asyncio.gather(*coros[start : start + chunk])
