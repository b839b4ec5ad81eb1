/**
 * End-to-end driver, run by tests/test_typescript_client.py against a real redis-server and a
 * real Python pool (the simulator as its LLM): enqueue through the client with ioredis and with
 * node-redis, follow the progress, read the pages; push invalid jobs raw and read the failed
 * list. Prints one JSON summary on stdout for the Python side to check.
 *
 * Env: REDIS_URL, KEY_PREFIX.
 */
import { Redis } from "ioredis";
import { createClient } from "redis";

import {
  EbookExistsError,
  FailedEntry,
  InvalidEbookError,
  type ProgressEvent,
  createEbookClient,
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
  const events: ProgressEvent[] = [];
  for await (const event of viaIo.subscribeProgress("e2e-io", wait)) events.push(event);
  const io1 = await viaIo.getPages("e2e-io");

  // 2. node-redis: enqueue, wait, read; the same id again is refused.
  await viaNode.enqueueEbook("e2e-node", { title: "Tea", pages: 3, language: "English" });
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
    events: events.map((e) => `${e.state} ${e.done}/${e.failed}/${e.total}`),
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
