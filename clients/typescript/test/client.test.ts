import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { Redis } from "ioredis";
import { createClient } from "redis";

import {
  EbookExistsError,
  type RedisAdapter,
  UnknownEbookError,
  createEbookClient,
  fromIoredis,
  fromNodeRedis,
} from "../src/index.js";

const packageDir = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** An adapter that records calls and answers status reads from a script of hashes. */
function fakeAdapter(statuses: Record<string, string>[] = [], evalReply: unknown = 1) {
  const calls: string[] = [];
  const adapter: RedisAdapter = {
    async hgetall(key) {
      calls.push(`HGETALL ${key}`);
      return statuses.length > 1 ? statuses.shift()! : (statuses[0] ?? {});
    },
    async lrange() {
      return [];
    },
    async eval(_script, keys, args) {
      calls.push(`EVAL ${keys.join(" ")} ${args.length}`);
      return evalReply;
    },
    async multi(commands) {
      calls.push(...commands.map((c) => c.join(" ")));
      return commands.map(() => ({}));
    },
    async xread() {
      return [];
    },
  };
  return { adapter, calls };
}

const status = (state: string, done: number, failed = 0, total = 2) => ({
  total: String(total),
  done: String(done),
  failed: String(failed),
  state,
  updatedAt: String(1000 + done + failed),
});

test("the generated zod schemas are up to date with schemas/ and pool/lua/", () => {
  execFileSync(process.execPath, [join(packageDir, "scripts", "generate.mjs"), "--check"]);
});

test("enqueue pushes the status and every page in one script call, under the prefix", async () => {
  const { adapter, calls } = fakeAdapter();
  const client = createEbookClient({ adapter, prefix: "p" });
  const result = await client.enqueueEbook("b1", { title: "T", outline: ["a", "b", "c"] });
  assert.deepEqual(result, { ebookId: "b1", totalPages: 3, created: true });
  assert.deepEqual(calls, ["EVAL p:ebook:b1:status p:queue 5"]);
});

test("an invalid page stops enqueue before anything reaches Redis", async () => {
  const { adapter, calls } = fakeAdapter();
  const client = createEbookClient({ adapter, maxJobBytes: 300 });
  await assert.rejects(
    client.enqueueEbook("b1", { title: "T", pages: 2, topic: "x".repeat(400) }),
    /page 0: the job is \d+ bytes/,
  );
  assert.deepEqual(calls, []);
});

test("an existing ebook id is refused, or skipped with ifExists: skip", async () => {
  const { adapter } = fakeAdapter([], 0);
  const client = createEbookClient({ adapter });
  await assert.rejects(client.enqueueEbook("b1", { title: "T", pages: 1 }), EbookExistsError);
  const skipped = await client.enqueueEbook("b1", { title: "T", pages: 1 }, { ifExists: "skip" });
  assert.equal(skipped.created, false);
});

test("subscribeProgress in poll mode yields each change once and ends at a terminal state", async () => {
  const { adapter } = fakeAdapter([
    status("queued", 0),
    status("queued", 0),
    status("generating", 1),
    status("partial", 1, 1),
  ]);
  const client = createEbookClient({ adapter });
  const events = [];
  const polling = { mode: "poll", minIntervalMs: 1, maxIntervalMs: 2 } as const;
  for await (const e of client.subscribeProgress("b", polling)) {
    assert.equal(e.type, "state");
    assert.equal(e.id, null);
    if (e.type === "state") events.push(`${e.state} ${e.done}/${e.failed}`);
  }
  assert.deepEqual(events, ["queued 0/0", "generating 1/0", "partial 1/1"]);
});

test("waitForEbook rejects with the signal's reason when aborted, and on unknown ebooks", async () => {
  const client = createEbookClient({ adapter: fakeAdapter([status("generating", 1)]).adapter });
  const controller = new AbortController();
  const waiting = client.waitForEbook("b", { signal: controller.signal, minIntervalMs: 1 });
  controller.abort(new Error("user left"));
  await assert.rejects(waiting, /user left/);
  const empty = createEbookClient({ adapter: fakeAdapter([]).adapter });
  await assert.rejects(empty.waitForEbook("nope"), UnknownEbookError);
});

test("waitForEbook times out with a TimeoutError", async () => {
  const client = createEbookClient({ adapter: fakeAdapter([status("generating", 1)]).adapter });
  await assert.rejects(client.waitForEbook("b", { timeoutMs: 20, minIntervalMs: 5 }), {
    name: "TimeoutError",
  });
});

test("a status hash that breaks the contract is reported, not guessed", async () => {
  const client = createEbookClient({ adapter: fakeAdapter([{ total: "two" }]).adapter });
  await assert.rejects(client.getStatus("b"), /status of ebook b: total/);
});

test("deleteEbook refuses an unfinished ebook unless forced", async () => {
  const { adapter, calls } = fakeAdapter([status("generating", 1)]);
  const client = createEbookClient({ adapter });
  await assert.rejects(client.deleteEbook("b"), /generating \(1 pages pending\)/);
  assert.equal(await client.deleteEbook("b", { force: true }), true);
  assert.ok(
    calls.includes(
      "DEL ebook:ebook:b:status ebook:ebook:b:pages ebook:ebook:b:errors ebook:ebook:b:events",
    ),
  );
});

test("node-redis MULTI replies (flat hashes) and ioredis [error, reply] pairs are normalised", async () => {
  const node = fromNodeRedis({
    hGetAll: async () => ({}),
    lRange: async () => [],
    eval: async () => 1,
    multi: () => ({ addCommand: () => undefined, exec: async () => [["a", "1", "b", "2"], 3] }),
    sendCommand: async () => null,
  });
  assert.deepEqual(await node.multi([["HGETALL", "k"], ["DEL", "k"]]), [{ a: "1", b: "2" }, 3]);
  const io = fromIoredis({
    hgetall: async () => ({}),
    lrange: async () => [],
    eval: async () => 1,
    multi: () => ({ exec: async () => [[new Error("WRONGTYPE"), null]] }),
    call: async () => null,
  });
  await assert.rejects(io.multi([["HGETALL", "k"]]), /WRONGTYPE/);
});

test("real ioredis and node-redis clients type-check as the client's redis option", () => {
  const io = new Redis({ lazyConnect: true });
  const node = createClient();
  assert.ok(createEbookClient({ redis: io }) && createEbookClient({ redis: node }));
  io.disconnect();
});
