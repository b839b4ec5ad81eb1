/**
 * End-to-end driver, run by tests/test_typescript_client.py against a real redis-server and a
 * real Python pool (the simulator as its LLM): enqueue through the client with ioredis and with
 * node-redis, follow the progress events (the pool's stream, XREAD BLOCK) to the final state,
 * resume from an event id, read the pages; push invalid jobs raw and read the failed list. Prints one JSON summary on stdout for the Python side to check.
 *
 * Env: REDIS_URL, KEY_PREFIX.
 */
import { Redis } from "ioredis";
import { createClient } from "redis";

import {
  EbookExistsError,
  FailedEntry,
  InvalidEbookError,
  type ProgressMessage,
  createEbookClient,
  isFinalEvent,
  subscribeProgress,
} from "../src/index.js";

const url = process.env.REDIS_URL;
const prefix = process.env.KEY_PREFIX;
if (!url || !prefix) throw new Error("set REDIS_URL and KEY_PREFIX");

const io = new Redis(url);
const node = createClient({ url });
await node.connect();
const viaIo = createEbookClient({ redis: io, prefix });
const viaNode = createEbookClient({ redis: node, prefix });
const wait = { timeoutMs: 60_000, minIntervalMs: 50, maxIntervalMs: 400 };
const follow = { timeoutMs: 60_000, blockMs: 1_000, mode: "stream" } as const;

async function collect(events: AsyncIterable<ProgressMessage>): Promise<ProgressMessage[]> {
  const out: ProgressMessage[] = [];
  for await (const event of events) out.push(event);
  return out;
}

/**
 * Every event of an ebook of `pages` pages: keepListening, until each page's event and a final
 * state came (a page event may come after a `done` computed from it: docs/contract.md, 8).
 */
async function followAll(events: AsyncGenerator<ProgressMessage>, pages: number) {
  const out: ProgressMessage[] = [];
  const seen = new Set<number>();
  for await (const event of events) {
    out.push(event);
    if (event.type === "page") seen.add(event.pageIndex);
    if (isFinalEvent(event) && seen.size === pages) break; // ends the generator
  }
  return out;
}

const describe = (events: ProgressMessage[]) =>
  events.map((e) => ({
    id: e.id,
    ebookId: e.ebookId,
    what:
      e.type === "page"
        ? `page ${e.pageIndex} ${e.outcome}`
        : `state ${e.state} ${e.done}/${e.failed}/${e.total}`,
  }));

try {
  // 1. ioredis: enqueue, follow the progress to the end, read the pages.
  const outline = ["Why bake", "Flour", "Water", "Salt", "Starter", "Schedule"];
  await viaIo.enqueueEbook("e2e-io", {
    title: "Sourdough",
    topic: "Baking bread on a work-week schedule",
    outline,
    targetWords: 80,
    metadata: { userId: "u_42" },
  });
  // Live, on the client's own connection (nothing else runs on it meanwhile).
  const events = await followAll(
    viaIo.subscribeProgress("e2e-io", { ...follow, keepListening: true }),
    6,
  );
  const io1 = await viaIo.getPages("e2e-io");
  // Without keepListening, from the start: it ends after the first final state event.
  const firstPass = await collect(subscribeProgress(io, "e2e-io", { ...follow, prefix }));
  // Resuming after the second event: the rest, the same ids. After the last: one final state.
  const resumed = await collect(
    subscribeProgress(io, "e2e-io", { ...follow, prefix, lastEventId: events[1]?.id ?? "0" }),
  );
  const afterLast = await collect(
    subscribeProgress(io, "e2e-io", { ...follow, prefix, lastEventId: events.at(-1)?.id ?? "0" }),
  );
  const polled = await collect(viaIo.subscribeProgress("e2e-io", { ...wait, mode: "poll" }));

  // 2. node-redis: enqueue, follow on a connection of its own, wait, read; the same id again
  // is refused.
  await viaNode.enqueueEbook("e2e-node", { title: "Tea", pages: 3, language: "English" });
  const listener = node.duplicate();
  await listener.connect();
  const nodeEvents = await followAll(
    subscribeProgress(listener, "e2e-node", { ...follow, prefix, keepListening: true }),
    3,
  );
  await listener.quit();
  const nodeStatus = await viaNode.waitForEbook("e2e-node", wait);
  const node1 = await viaNode.getPages("e2e-node");
  let duplicate = "";
  try {
    await viaNode.enqueueEbook("e2e-io", { title: "Again", pages: 1 });
  } catch (err) {
    duplicate = err instanceof EbookExistsError ? err.name : String(err);
  }

  // 3. The client refuses an oversized page before pushing anything.
  const queueBefore = await io.llen(`${prefix}:queue`);
  let refused = "";
  try {
    await viaIo.enqueueEbook("e2e-refused", {
      title: "Big",
      pages: 2,
      metadata: { blob: "x".repeat(70_000) },
    });
  } catch (err) {
    refused = err instanceof InvalidEbookError ? err.message : String(err);
  }
  const queueAfter = await io.llen(`${prefix}:queue`);
  const refusedStatus = await viaIo.getStatus("e2e-refused");

  // 4. Invalid jobs pushed raw from Node land in the failed list, and their ebooks end.
  // (A producer writing raw jobs also writes the status hash, as docs/contract.md says.)
  const base = { v: 1, ebookId: "e2e-bad", totalPages: 4, title: "Bad" };
  const queued = { done: "0", failed: "0", state: "queued", createdAt: String(Date.now()) };
  await io.hset(`${prefix}:ebook:e2e-bad:status`, { total: "4", ...queued });
  await io.hset(`${prefix}:ebook:e2e-big:status`, { total: "1", ...queued });
  await io.lpush(
    `${prefix}:queue`,
    JSON.stringify({ ...base, pageIndex: 0 }),
    JSON.stringify({ ...base, pageIndex: 1, title: "   " }),
    JSON.stringify({ ...base, pageIndex: 2, tittle: "typo" }),
    JSON.stringify({ ...base, pageIndex: 4 }),
    JSON.stringify({ v: 1, ebookId: "e2e-big", pageIndex: 0, totalPages: 1, title: "Big",
      metadata: { blob: "x".repeat(70_000) } }), // prettier-ignore
  );
  const bad = await viaNode.waitForEbook("e2e-bad", wait);
  const big = await viaNode.waitForEbook("e2e-big", wait);
  const failed = (await io.lrange(`${prefix}:failed`, 0, -1)).map((raw) =>
    FailedEntry.parse(JSON.parse(raw)),
  );
  const retry = await viaIo.retryFailed();

  const summary = {
    events: describe(events),
    firstPass: describe(firstPass),
    resumed: describe(resumed),
    afterLast: describe(afterLast),
    polled: describe(polled),
    nodeEvents: describe(nodeEvents),
    io: {
      pages: io1.pages.map((p) => ({ index: p.pageIndex, title: p.pageTitle, meta: p.metadata })),
      contentOk: io1.pages.every((p) => p.content.length > 20),
    },
    node: { state: nodeStatus.state, done: nodeStatus.done, pages: node1.pages.length },
    duplicate,
    refused,
    refusedPushedNothing: queueAfter === queueBefore && refusedStatus === null,
    bad: { state: bad.state, done: bad.done, failed: bad.failed, errors: (await viaNode.getPages("e2e-bad")).errors },
    big: { state: big.state, failed: big.failed },
    failed: failed.map((e) => ({
      ebookId: e.ebookId ?? null,
      pageIndex: e.pageIndex ?? null,
      errorType: e.errorType,
      error: e.error,
    })),
    retry,
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
} finally {
  io.disconnect();
  await node.quit();
}
