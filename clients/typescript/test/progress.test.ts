import assert from "node:assert/strict";
import { test } from "node:test";

import {
  type ProgressMessage,
  type RedisAdapter,
  type StreamEntry,
  UnknownEbookError,
  WireFormatError,
  createEbookClient,
  fromIoredis,
  fromNodeRedis,
  isFinalEvent,
  parseProgressEntry,
  parseXreadReply,
  subscribeProgress,
} from "../src/index.js";

const page = (i: number, outcome = "succeeded") => ({
  v: 1, type: "page", ebookId: "b", pageIndex: i, totalPages: 2, jobId: `b:${i}`, outcome,
  attempts: 1, promptTokens: outcome === "succeeded" ? 5 : null,
  completionTokens: outcome === "succeeded" ? 7 : null,
  reason: outcome === "succeeded" ? null : "HTTP 400", errorType: outcome === "succeeded" ? null : "fatal",
  at: 1000 + i, poolId: "p-1",
}); // prettier-ignore
const state = (s: string, previous: string | null, done: number, failed = 0) => ({
  v: 1, type: "state", ebookId: "b", state: s, previous, total: 2, done, failed, at: 2000 + done,
}); // prettier-ignore
const entry = (id: string, event: object): StreamEntry => ({
  id,
  fields: { data: JSON.stringify(event), state: "generating" },
});

const RUN: StreamEntry[] = [
  entry("1-0", state("generating", null, 0)),
  entry("2-0", page(0)),
  entry("3-0", page(1, "failed")),
  entry("4-0", state("partial", "generating", 1, 1)),
];

/** A Redis with one ebook "b": a stream (or none) and a sequence of status hashes. */
function fakeRedis(stream: StreamEntry[] | null, statuses: Record<string, string>[]) {
  const reads: string[] = [];
  const adapter: RedisAdapter = {
    async hgetall() {
      return statuses.length > 1 ? statuses.shift()! : (statuses[0] ?? {});
    },
    async lrange() {
      return [];
    },
    async eval() {
      return 1;
    },
    async multi(commands) {
      return commands.map(([name]) =>
        name === "EXISTS"
          ? Number(stream !== null)
          : statuses.length > 1
            ? statuses.shift()!
            : (statuses[0] ?? {}),
      );
    },
    async xread(key, id, options = {}) {
      reads.push(`${key} ${id}${options.blockMs === undefined ? "" : " BLOCK"}`);
      const after = (stream ?? []).filter((e) => compareIds(e.id, id) > 0);
      if (after.length === 0 && options.blockMs !== undefined) await new Promise((r) => setTimeout(r, 1));
      return after.slice(0, options.count ?? after.length);
    },
  };
  return { adapter, reads };
}

function compareIds(a: string, b: string): number {
  const [ams = 0, aseq = 0] = a.split("-").map(Number);
  const [bms = 0, bseq = 0] = b.split("-").map(Number);
  return ams - bms || aseq - bseq;
}

const status = (s: string, done: number, failed = 0) => ({
  total: "2", done: String(done), failed: String(failed), state: s, updatedAt: "3000",
}); // prettier-ignore

async function collect(iterable: AsyncIterable<ProgressMessage>): Promise<ProgressMessage[]> {
  const out: ProgressMessage[] = [];
  for await (const event of iterable) out.push(event);
  return out;
}

test("XREAD replies parse the same in RESP2 arrays, RESP3 maps, objects and node-redis shapes", () => {
  const resp2 = [["k", [["1-0", ["data", "{}", "state", "done"]], ["2-0", ["data", "[]"]]]]];
  const expected = [
    { id: "1-0", fields: { data: "{}", state: "done" } },
    { id: "2-0", fields: { data: "[]" } },
  ];
  assert.deepEqual(parseXreadReply(resp2), expected);
  assert.deepEqual(parseXreadReply(new Map([["k", resp2[0]![1]]])), expected);
  assert.deepEqual(parseXreadReply({ k: resp2[0]![1] }), expected);
  assert.deepEqual(parseXreadReply(resp2[0]), expected, "ioredis 6: a RESP3 map, flattened");
  const parsed = [{ name: "k", messages: [{ id: "1-0", message: { data: "{}", state: "done" } }] }];
  assert.deepEqual(parseXreadReply(parsed), expected.slice(0, 1));
  assert.deepEqual(parseXreadReply(null), []);
});

test("a stream entry parses to a typed, validated event with its stream id", () => {
  const event = parseProgressEntry(entry("2-0", page(0)));
  assert.equal(event.id, "2-0");
  assert.equal(event.type, "page");
  if (event.type === "page") assert.deepEqual([event.pageIndex, event.promptTokens], [0, 5]);
  const failed = parseProgressEntry(entry("3-0", page(1, "failed")));
  assert.ok(failed.type === "page" && failed.errorType === "fatal" && failed.promptTokens === null);
  const final = parseProgressEntry(entry("4-0", { ...state("done", "generating", 2), extra: 1 }));
  assert.ok(isFinalEvent(final) && final.state === "done");
  assert.equal((final as Record<string, unknown>)["extra"], 1, "unknown fields are kept");
  assert.equal(isFinalEvent(parseProgressEntry(RUN[0]!)), false);
});

test("an entry that breaks the contract is a WireFormatError naming the field", () => {
  assert.throws(() => parseProgressEntry({ id: "1-0", fields: { state: "" } }), /no data field/);
  assert.throws(() => parseProgressEntry({ id: "1-0", fields: { data: "{" } }), /not JSON/);
  assert.throws(() => parseProgressEntry(entry("1-0", { ...page(0), outcome: "maybe" })), WireFormatError);
  assert.throws(() => parseProgressEntry(entry("1-0", { ...page(0), type: "other" })), WireFormatError);
  assert.throws(
    () => parseProgressEntry(entry("1-0", { ...state("done", null, 2), done: "2" })),
    /progress event 1-0: done/,
  );
});

test("subscribeProgress reads the stream and ends after the final state event", async () => {
  const { adapter, reads } = fakeRedis(RUN, [status("partial", 1, 1)]);
  const events = await collect(createEbookClient({ adapter, prefix: "p" }).subscribeProgress("b"));
  assert.deepEqual(events.map((e) => e.id), ["1-0", "2-0", "3-0", "4-0"]);
  assert.deepEqual(events.map((e) => e.type), ["state", "page", "page", "state"]);
  assert.deepEqual(reads, ["p:ebook:b:events 0"]);
});

test("subscribeProgress resumes after lastEventId, and blocks for what comes next", async () => {
  const stream = RUN.slice(0, 2);
  const { adapter, reads } = fakeRedis(stream, [status("generating", 1)]);
  const seen: string[] = [];
  for await (const event of subscribeProgress(adapter, "b", { lastEventId: "1-0" })) {
    seen.push(event.id ?? "null");
    if (stream.length === 2) stream.push(...RUN.slice(2)); // the pool goes on meanwhile
  }
  assert.deepEqual(seen, ["2-0", "3-0", "4-0"]);
  assert.deepEqual(reads, ["ebook:ebook:b:events 1-0", "ebook:ebook:b:events 2-0 BLOCK"]);
});

test("keepListening reads on after the final state, until aborted", async () => {
  const { adapter } = fakeRedis(RUN, [status("partial", 1, 1)]);
  const controller = new AbortController();
  const seen: string[] = [];
  const reading = (async () => {
    for await (const e of subscribeProgress(adapter, "b", {
      keepListening: true, blockMs: 1, signal: controller.signal,
    })) seen.push(e.id ?? "null"); // prettier-ignore
  })();
  await new Promise((r) => setTimeout(r, 20));
  controller.abort(new Error("client left"));
  await assert.rejects(reading, /client left/);
  assert.deepEqual(seen, ["1-0", "2-0", "3-0", "4-0"]);
});

test("a finished ebook whose final event never comes ends with a state from the status", async () => {
  // e.g. its last page was an invalid job (no event), or the event was lost.
  const { adapter } = fakeRedis(RUN.slice(0, 2), [status("partial", 1, 1)]);
  const events = await collect(subscribeProgress(adapter, "b", { blockMs: 1 }));
  assert.deepEqual(events.map((e) => e.id), ["1-0", "2-0", null]);
  const last = events.at(-1)!;
  assert.ok(isFinalEvent(last) && last.state === "partial" && last.previous === "generating");
});

test("no stream while the status says the pool started: it polls the status instead", async () => {
  const { adapter, reads } = fakeRedis(null, [
    status("queued", 0),
    status("queued", 0),
    status("generating", 1),
    status("generating", 1),
    status("done", 2),
  ]);
  const events = await collect(
    subscribeProgress(adapter, "b", { blockMs: 1, minIntervalMs: 1, maxIntervalMs: 2 }),
  );
  assert.ok(reads.length >= 2, "it read the stream first, in case events come");
  assert.deepEqual(
    events.map((e) => (e.type === "state" ? `${e.id} ${e.state} ${e.done}` : e.type)),
    ["null generating 1", "null done 2"],
  );
});

test("stream mode never polls; an unknown ebook is refused at once", async () => {
  const { adapter } = fakeRedis(null, [status("generating", 1), status("done", 2)]);
  const events = await collect(subscribeProgress(adapter, "b", { mode: "stream", blockMs: 1 }));
  assert.deepEqual(events.map((e) => e.id), [null]);
  await assert.rejects(collect(subscribeProgress(fakeRedis(null, []).adapter, "nope")), UnknownEbookError);
});

test("the ioredis and node-redis adapters send XREAD as a raw command", async () => {
  const sent: unknown[] = [];
  const reply = [["k", [["1-0", ["data", "{}"]]]]];
  const io = fromIoredis({
    hgetall: async () => ({}),
    lrange: async () => [],
    eval: async () => 1,
    multi: () => ({ exec: async () => [] }),
    call: async (command, args) => (sent.push([command, ...args]), reply),
  });
  const node = fromNodeRedis({
    hGetAll: async () => ({}),
    lRange: async () => [],
    eval: async () => 1,
    multi: () => ({ addCommand: () => undefined, exec: async () => [] }),
    sendCommand: async (args) => (sent.push(args), reply),
  });
  assert.deepEqual(await io.xread("k", "0", { count: 10, blockMs: 500 }), [
    { id: "1-0", fields: { data: "{}" } },
  ]);
  assert.equal((await node.xread("k", "5-1")).length, 1);
  assert.deepEqual(sent, [
    ["XREAD", "COUNT", "10", "BLOCK", "500", "STREAMS", "k", "0"],
    ["XREAD", "STREAMS", "k", "5-1"],
  ]);
});
