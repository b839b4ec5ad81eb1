/**
 * The ebook-pool client: enqueue an ebook, read its status and pages, wait for it, follow its
 * progress, delete it, and retry its failed pages. Keys and formats: docs/contract.md.
 */
import { WireFormatError } from "./errors.js";
import { EbookStatusHash, FailedEntry, PageRecord } from "./generated/wire.js";
import { RETRY_FAILED_LUA } from "./generated/lua.js";
import { DEFAULT_MAX_JOB_BYTES, type EbookBrief, buildJobs } from "./jobs.js";
import { type ProgressMessage, isFinalEvent, parseProgressEntry } from "./progress.js";
import { type RedisAdapter, type RedisLike, redisAdapter } from "./redis.js";

export { WireFormatError };

/** An ebook's state; `done`, `failed` and `partial` are terminal (until a retry). */
export type EbookState = "queued" | "generating" | "done" | "failed" | "partial";
export const TERMINAL_STATES: ReadonlySet<EbookState> = new Set(["done", "failed", "partial"]);

/** An ebook's status hash, decoded: counters as numbers, times as epoch ms or null. */
export interface EbookStatus {
  ebookId: string;
  state: EbookState;
  total: number;
  done: number;
  failed: number;
  /** total - done - failed, at least 0. */
  pending: number;
  /** The state is terminal: every page is stored or failed for good. */
  finished: boolean;
  createdAt: number | null;
  startedAt: number | null;
  updatedAt: number | null;
  finishedAt: number | null;
  /** The hash as stored, including fields this client does not know (e.g. cost counters). */
  fields: Record<string, string>;
}

/** The stored pages in page order, and why the failed ones failed. */
export interface EbookPages {
  pages: PageRecord[];
  /** Page index → one-line reason. */
  errors: Record<number, string>;
}

export interface ClientOptions {
  /** A connected node-redis client or an ioredis client; or pass `adapter`. */
  redis?: RedisLike;
  /** Your own implementation of the few calls the client makes. */
  adapter?: RedisAdapter;
  /** KEY_PREFIX of the pool (default "ebook"). */
  prefix?: string;
  /** MAX_JOB_BYTES of the pool (default 65536). */
  maxJobBytes?: number;
}

export interface EnqueueOptions {
  /** What to do when the ebook id already exists: "throw" (default) or "skip" (no-op). */
  ifExists?: "throw" | "skip";
}

export interface EnqueueResult {
  ebookId: string;
  totalPages: number;
  /** False when the ebook already existed and nothing was pushed (`ifExists: "skip"`). */
  created: boolean;
}

export interface SubscribeOptions extends WaitOptions {
  /**
   * Resume after this stream id (the `id` of the last event seen; an SSE `Last-Event-ID`).
   * Default "0": from the oldest event the stream keeps.
   */
  lastEventId?: string;
  /** Keep listening after the ebook's final state event (a retry may bring more). Default false. */
  keepListening?: boolean;
  /**
   * "auto" (default): read the events stream; poll the status instead only when the stream
   * does not exist while the status says the pool has started the ebook (a pool with
   * PROGRESS_EVENTS=false, or a stream expired). "stream": never poll. "poll": only poll the
   * status hash (state events derived from it, `id` null), as before the pool had events.
   */
  mode?: "auto" | "stream" | "poll";
  /** XREAD BLOCK: how long one read waits before the status is checked (5000). */
  blockMs?: number;
  /**
   * The connection XREAD BLOCK runs on (ioredis, node-redis or an adapter), when it must not be
   * the client's own: BLOCK holds a connection, so a long-lived listener beside other requests
   * (a route handler) should have its own (`redis.duplicate()`). Default: the client's.
   */
  connection?: RedisLike | RedisAdapter;
}

export interface WaitOptions {
  /** Give up after this long (rejects with a TimeoutError). Default: no limit. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** First poll interval; doubles while nothing changes, back to this on a change (250). */
  minIntervalMs?: number;
  /** Longest poll interval (5000). */
  maxIntervalMs?: number;
}

/** The ebook id already has a status hash: enqueueing again would mix two books. */
export class EbookExistsError extends Error {
  override name = "EbookExistsError";
}
/** No status hash for this ebook id (never enqueued, or deleted). */
export class UnknownEbookError extends Error {
  override name = "UnknownEbookError";
}

// KEYS: status, queue. ARGV: total, now, the jobs in page order.
// Atomic and conditional, which MULTI alone cannot be: an existing ebook is left untouched.
const ENQUEUE_LUA = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'total', ARGV[1], 'done', '0', 'failed', '0', 'state', 'queued',
  'createdAt', ARGV[2], 'updatedAt', ARGV[2])
for i = 3, #ARGV, 1000 do
  redis.call('LPUSH', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return 1
`;

/** Every key of the contract under one prefix (pool/keys.py). */
export function keysFor(prefix = "ebook") {
  return {
    queue: `${prefix}:queue`,
    failed: `${prefix}:failed`,
    status: (id: string) => `${prefix}:ebook:${id}:status`,
    pages: (id: string) => `${prefix}:ebook:${id}:pages`,
    errors: (id: string) => `${prefix}:ebook:${id}:errors`,
    events: (id: string) => `${prefix}:ebook:${id}:events`,
    eventsChannel: `${prefix}:events`,
  };
}

/** The client of one pool (one Redis, one KEY_PREFIX). */
export class EbookPoolClient {
  readonly keys: ReturnType<typeof keysFor>;
  readonly maxJobBytes: number;
  private readonly redis: RedisAdapter;

  constructor(options: ClientOptions) {
    const adapter = options.adapter ?? (options.redis && redisAdapter(options.redis));
    if (!adapter) throw new TypeError("give a Redis client (redis) or an adapter");
    this.redis = adapter;
    this.keys = keysFor(options.prefix ?? "ebook");
    this.maxJobBytes = options.maxJobBytes ?? DEFAULT_MAX_JOB_BYTES;
  }

  /**
   * Queue every page of a new ebook and create its status hash, in one atomic script.
   *
   * Every page is built and checked first (`buildJobs`): if one is invalid or too large,
   * nothing is pushed. An id that already has a status hash is refused (EbookExistsError), or
   * left as it is with `ifExists: "skip"`, so a retried request never queues a book twice.
   *
   * @throws InvalidEbookError (naming the page), EbookExistsError.
   */
  async enqueueEbook(
    ebookId: string,
    brief: EbookBrief,
    { ifExists = "throw" }: EnqueueOptions = {},
  ): Promise<EnqueueResult> {
    const jobs = buildJobs(ebookId, brief, { maxJobBytes: this.maxJobBytes });
    const payloads = jobs.map((job) => JSON.stringify(job));
    const created = await this.redis.eval(
      ENQUEUE_LUA,
      [this.keys.status(ebookId), this.keys.queue],
      [String(jobs.length), String(Date.now()), ...payloads],
    );
    if (Number(created) !== 1 && ifExists === "throw") {
      throw new EbookExistsError(`ebook ${ebookId} already exists; nothing was pushed`);
    }
    return { ebookId, totalPages: jobs.length, created: Number(created) === 1 };
  }

  /** The ebook's status, or null if it is unknown. */
  async getStatus(ebookId: string): Promise<EbookStatus | null> {
    return decodeStatus(ebookId, await this.redis.hgetall(this.keys.status(ebookId)));
  }

  /** The stored pages in order and the reasons of the failed ones (one MULTI: consistent). */
  async getPages(ebookId: string): Promise<EbookPages> {
    const [pages, errors] = (await this.redis.multi([
      ["HGETALL", this.keys.pages(ebookId)],
      ["HGETALL", this.keys.errors(ebookId)],
    ])) as [Record<string, string>, Record<string, string>];
    return {
      pages: Object.values(pages)
        .map((json) => parseRecord(PageRecord, json, `a page of ebook ${ebookId}`))
        .sort((a, b) => a.pageIndex - b.pageIndex),
      errors: Object.fromEntries(Object.entries(errors).map(([i, why]) => [Number(i), why])),
    };
  }

  /**
   * Poll the status until the ebook is finished (done, failed or partial), with backoff. It
   * polls rather than reading the events stream, so it never holds the connection (no BLOCK).
   *
   * @throws UnknownEbookError if the ebook has no status; the signal's reason on abort; a
   *   TimeoutError (a DOMException) after `timeoutMs`.
   */
  async waitForEbook(ebookId: string, options: WaitOptions = {}): Promise<EbookStatus> {
    for await (const event of this.subscribeProgress(ebookId, { ...options, mode: "poll" })) {
      if (isFinalEvent(event)) {
        const status = await this.getStatus(ebookId);
        if (status?.finished) return status;
      }
    }
    throw new UnknownEbookError(`ebook ${ebookId} disappeared while waiting`);
  }

  /**
   * The ebook's progress events as the pool publishes them (docs/contract.md, section 8): read
   * from its stream with XREAD BLOCK, each validated and with its stream `id`, from
   * `lastEventId` on; it ends after the ebook's final state event (done, failed, partial)
   * unless `keepListening`. See `SubscribeOptions` for when it polls the status instead.
   *
   * The status hash is the truth: when nothing came for `blockMs` and the status says the
   * ebook is finished (its last event was lost, or its last pages were invalid jobs, which
   * publish no event), a state event derived from the status (`id` null) ends it.
   *
   * @throws UnknownEbookError if the ebook has neither status nor events; WireFormatError on an
   *   event that breaks the contract; see `waitForEbook` for the rest.
   */
  async *subscribeProgress(
    ebookId: string,
    options: SubscribeOptions = {},
  ): AsyncGenerator<ProgressMessage, void, undefined> {
    const { timeoutMs, signal, mode = "auto", blockMs = 5_000, keepListening = false } = options;
    const signals = [signal, timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs)];
    const stop = AbortSignal.any(signals.filter((s): s is AbortSignal => s !== undefined));
    if (mode === "poll") {
      yield* this.pollProgress(ebookId, options, stop, null);
      return;
    }
    const redis = options.connection ? toAdapter(options.connection) : this.redis;
    const key = this.keys.events(ebookId);
    let [exists, status] = await this.probe(ebookId);
    if (status === null && !exists) throw new UnknownEbookError(`unknown ebook ${ebookId}`);
    let lastId = options.lastEventId ?? "0";
    let lastState: EbookState | null = null;
    let block = false; // the first read catches up at once
    for (;;) {
      stop.throwIfAborted();
      const read = redis.xread(key, lastId, block ? { count: 100, blockMs } : { count: 100 });
      const entries = await abortable(read, stop);
      for (const entry of entries) {
        const event = parseProgressEntry(entry);
        lastId = entry.id;
        if (event.type === "state") lastState = event.state;
        yield event;
        if (isFinalEvent(event) && !keepListening) return;
      }
      block = true;
      if (entries.length > 0) continue;
      [exists, status] = await this.probe(ebookId); // nothing new: what does the truth say?
      if (status === null) return; // deleted while we followed it
      if (mode === "auto" && !exists && status.state !== "queued") {
        yield* this.pollProgress(ebookId, options, stop, lastState);
        return;
      }
      if (status.finished && !keepListening) {
        yield statusEvent(status, lastState);
        return;
      }
    }
  }

  /** The status's state events (id null): one now, one per change; backoff while none. */
  private async *pollProgress(
    ebookId: string,
    { minIntervalMs = 250, maxIntervalMs = 5_000, keepListening = false }: SubscribeOptions,
    stop: AbortSignal,
    previous: EbookState | null,
  ): AsyncGenerator<ProgressMessage, void, undefined> {
    let last = "";
    let interval = minIntervalMs;
    for (;;) {
      stop.throwIfAborted();
      const status = await this.getStatus(ebookId);
      if (status === null) {
        if (last === "" && previous === null) throw new UnknownEbookError(`unknown ebook ${ebookId}`);
        return; // deleted while we followed it
      }
      const key = `${status.state}/${status.done}/${status.failed}/${status.total}`;
      if (key !== last) {
        last = key;
        interval = minIntervalMs;
        yield statusEvent(status, previous);
        previous = status.state;
        if (status.finished && !keepListening) return;
      } else {
        interval = Math.min(interval * 2, maxIntervalMs);
      }
      await sleep(interval, stop);
    }
  }

  /** Whether the events stream exists, and the status, in one MULTI. */
  private async probe(ebookId: string): Promise<[boolean, EbookStatus | null]> {
    const [exists, hash] = (await this.redis.multi([
      ["EXISTS", this.keys.events(ebookId)],
      ["HGETALL", this.keys.status(ebookId)],
    ])) as [unknown, Record<string, string>];
    return [Number(exists) > 0, decodeStatus(ebookId, hash)];
  }

  /**
   * Delete the ebook's status, pages and errors. An unfinished ebook is refused unless
   * `force`: its queued pages would re-create its status when a pool takes them.
   *
   * @returns false if the ebook was unknown.
   */
  async deleteEbook(ebookId: string, { force = false } = {}): Promise<boolean> {
    const status = await this.getStatus(ebookId);
    if (status === null) return false;
    if (!status.finished && !force) {
      throw new Error(
        `ebook ${ebookId} is ${status.state} (${status.pending} pages pending): ` +
          "wait for it, or pass { force: true }",
      );
    }
    const ebook = [
      this.keys.status(ebookId),
      this.keys.pages(ebookId),
      this.keys.errors(ebookId),
      this.keys.events(ebookId),
    ];
    await this.redis.multi([["DEL", ...ebook]]);
    return true;
  }

  /**
   * Put failed pages back on the queue (all, or one ebook's), as `ebook-pool failed retry`
   * does: each entry once, its page no longer counted as failed. Invalid payloads stay in the
   * failed list (they would fail again as they are), and so do entries that kept only a prefix.
   */
  async retryFailed({ ebookId }: { ebookId?: string } = {}): Promise<{
    retried: number;
    skipped: number;
  }> {
    let retried = 0;
    let skipped = 0;
    for (const raw of await this.redis.lrange(this.keys.failed, 0, -1)) {
      const entry = FailedEntry.safeParse(safeJson(raw));
      if (!entry.success) continue;
      const e = entry.data;
      if (ebookId !== undefined && e.ebookId !== ebookId) continue;
      if (e.errorType === "invalid" || e.payloadTruncated || typeof e.payload !== "string") {
        skipped++;
        continue;
      }
      const keys = [this.keys.failed, this.keys.queue];
      const index = typeof e.pageIndex === "number" && e.ebookId ? e.pageIndex : null;
      if (index !== null && e.ebookId) {
        keys.push(
          this.keys.errors(e.ebookId),
          this.keys.status(e.ebookId),
          this.keys.pages(e.ebookId),
        );
      }
      const done = await this.redis.eval(RETRY_FAILED_LUA, keys, [
        raw,
        e.payload,
        index === null ? "" : String(index),
        String(Date.now()),
      ]);
      if (Number(done) === 1) retried++;
    }
    return { retried, skipped };
  }
}

/** A client of the pool at `options.redis` (or `options.adapter`). */
export function createEbookClient(options: ClientOptions): EbookPoolClient {
  return new EbookPoolClient(options);
}

/**
 * `subscribeProgress` on a connection of its own: `redis` (ioredis, node-redis or an adapter)
 * runs every call, XREAD BLOCK included. Give it a dedicated connection and close it after.
 */
export function subscribeProgress(
  redis: RedisLike | RedisAdapter,
  ebookId: string,
  { prefix, ...options }: SubscribeOptions & { prefix?: string } = {},
): AsyncGenerator<ProgressMessage, void, undefined> {
  const client = new EbookPoolClient({ adapter: toAdapter(redis), ...(prefix ? { prefix } : {}) });
  return client.subscribeProgress(ebookId, options);
}

/** An adapter as it is; a client wrapped (an adapter has neither `call` nor `hGetAll`). */
function toAdapter(redis: RedisLike | RedisAdapter): RedisAdapter {
  return "call" in redis || "hGetAll" in redis ? redisAdapter(redis) : redis;
}

/** A state event derived from the status hash (not from the stream: its id is null). */
function statusEvent(status: EbookStatus, previous: EbookState | null): ProgressMessage {
  return {
    v: 1,
    type: "state",
    ebookId: status.ebookId,
    state: status.state,
    previous,
    total: status.total,
    done: status.done,
    failed: status.failed,
    at: status.updatedAt ?? Date.now(),
    id: null,
  };
}

/** The promise, or the signal's reason as soon as it aborts (the promise is left to settle). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

/** A status hash decoded, or null if it is empty; validated against `EbookStatusHash`. */
export function decodeStatus(ebookId: string, hash: Record<string, string>): EbookStatus | null {
  if (Object.keys(hash).length === 0) return null;
  const parsed = EbookStatusHash.safeParse(hash);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new WireFormatError(
      `status of ebook ${ebookId}: ${issue?.path.join(".")}: ${issue?.message ?? "invalid"}`,
    );
  }
  const s = parsed.data;
  const total = Number(s.total);
  const done = Number(s.done ?? 0);
  const failed = Number(s.failed ?? 0);
  const state = s.state ?? "queued";
  return {
    ebookId,
    state,
    total,
    done,
    failed,
    pending: Math.max(total - done - failed, 0),
    finished: TERMINAL_STATES.has(state),
    createdAt: epoch(s.createdAt),
    startedAt: epoch(s.startedAt),
    updatedAt: epoch(s.updatedAt),
    finishedAt: epoch(s.finishedAt),
    fields: { ...hash },
  };
}

function epoch(value: string | null | undefined): number | null {
  return value === undefined || value === null ? null : Number(value);
}

function parseRecord<T>(
  schema: { safeParse(v: unknown): { success: true; data: T } | { success: false; error: Error } },
  json: string,
  what: string,
): T {
  const parsed = schema.safeParse(safeJson(json));
  if (!parsed.success) throw new WireFormatError(`${what} does not match the contract: ${parsed.error.message}`);
  return parsed.data;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}


