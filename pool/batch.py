"""Coalesce the script calls that many workers make at the same moment into one round trip.

With 100 workers finishing pages, calling EVALSHA once per page costs one round trip and one
trip through redis-py's connection pool each. `ScriptBatcher` queues the calls made during one
turn of the event loop and sends them as a single pipeline; each caller still gets its own
result or exception. Nothing is delayed by a timer: a lone call goes out on the next turn.

The pipeline is written on one pooled connection directly (`_round_trip`): redis-py's
`Pipeline` object adds a command stack, per-command option handling and per-batch
observability that cost more than the EVALSHAs themselves. A connection error is retried as
the connection's retry policy says, as redis-py's pipelines do, and disconnects it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError, NoScriptError, ResponseError, TimeoutError

__all__ = ["ScriptBatcher"]

_Call = tuple[AsyncScript, list[Any], list[Any], "asyncio.Future[Any]"]


class ScriptBatcher:
    """Runs Lua scripts through shared pipelines.

    Args:
        redis: the client whose connection pool the pipelines use.
        max_batch: most calls per pipeline; more wait for the next turn.
    """

    def __init__(self, redis: Redis, *, max_batch: int = 512) -> None:
        self._redis = redis
        self._max_batch = max_batch
        self._pending: list[_Call] = []
        self._scheduled = False
        self._sending: set[asyncio.Task[None]] = set()

    async def call(self, script: AsyncScript, keys: list[Any], args: list[Any]) -> Any:
        """Run `script` with `keys` and `args` in the next batch; return its result."""
        return await self.submit(script, keys, args)

    def submit(self, script: AsyncScript, keys: list[Any], args: list[Any]) -> asyncio.Future[Any]:
        """`call` without a coroutine: the future of its result (or of its exception)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((script, keys, args, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._scheduled = False
        while self._pending:
            batch, self._pending = (
                self._pending[: self._max_batch],
                self._pending[self._max_batch :],
            )
            task = asyncio.ensure_future(self._send(batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Call]) -> None:
        try:
            try:
                results = await self._execute(batch)
            except (ConnectionError, TimeoutError, OSError):
                raise
            except Exception:
                # Not the connection: one call could not be sent (say, an argument that does not
                # encode). Send each call on its own, so only that caller gets the error.
                if len(batch) == 1:
                    raise
                for call in batch:
                    await self._send([call])
                return
            missing = {id(c[0]): c[0] for c, r in zip(batch, results, strict=True) if _noscript(r)}
            if missing:  # a restarted Redis forgot our scripts: load them and run those again
                for script in missing.values():
                    await self._redis.script_load(script.script)
                again = [i for i, r in enumerate(results) if _noscript(r)]
                for i, result in zip(
                    again, await self._execute([batch[i] for i in again]), strict=True
                ):
                    results[i] = result
        except BaseException as exc:  # the connection failed: every caller sees it
            for *_, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (*_, future), result in zip(batch, results, strict=True):
            if future.done():  # the caller was cancelled; the write still happened
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _execute(self, batch: list[_Call]) -> list[Any]:
        # Plain EVALSHA: registering the scripts on the pipeline would cost a SCRIPT EXISTS
        # round trip on every execute.
        pool = self._redis.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            results: list[Any] = await conn.retry.call_with_retry(
                lambda: _round_trip(conn, batch), lambda _: conn.disconnect()
            )
            return results
        finally:
            await pool.release(conn)


async def _round_trip(conn: AbstractConnection, batch: list[_Call]) -> list[Any]:
    """Send every call of `batch` at once and read every reply; an error reply is returned
    in its place (the others still ran), any other failure disconnects."""
    packed = conn.pack_commands(
        ("EVALSHA", script.sha, len(keys), *keys, *args) for script, keys, args, _ in batch
    )
    try:
        await conn.send_packed_command(packed)
        results: list[Any] = []
        for _ in batch:
            try:
                results.append(await conn.read_response())
            except ResponseError as exc:
                results.append(exc)
        return results
    except BaseException:
        # Replies may be left unread on the socket: it must not be reused.
        await conn.disconnect(nowait=True)
        raise


def _noscript(result: Any) -> bool:
    return isinstance(result, NoScriptError)
