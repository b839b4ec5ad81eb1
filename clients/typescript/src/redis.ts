/**
 * The few Redis calls the client makes, behind one small interface, so ioredis and node-redis
 * both work. Their differences handled here: node-redis needs `await client.connect()` first
 * (the caller's job) and names commands `hGetAll`/`lRange`; its `eval` takes `{ keys,
 * arguments }`; its `multi().exec()` resolves to the replies (and rejects on an error), while
 * ioredis resolves to `[error, reply]` pairs, or null when a WATCH aborted it. XREAD is sent as a
 * raw command on both (`call` / `sendCommand`), and its reply (RESP2 arrays, or RESP3 maps) is
 * normalised by `parseXreadReply`.
 */

/** One entry of a Redis stream: its id and its fields. */
export interface StreamEntry {
  id: string;
  fields: Record<string, string>;
}

/** Options of `RedisAdapter.xread`. */
export interface XreadOptions {
  /** BLOCK: wait up to this long for a new entry (omitted: answer at once). */
  blockMs?: number;
  /** COUNT: at most this many entries. */
  count?: number;
}

/** What the client needs from Redis: `redisAdapter(client)` builds it; tests may implement it. */
export interface RedisAdapter {
  hgetall(key: string): Promise<Record<string, string>>;
  lrange(key: string, start: number, stop: number): Promise<string[]>;
  eval(script: string, keys: string[], args: string[]): Promise<unknown>;
  /** MULTI, the commands, EXEC: the replies in order; rejects if any command failed. */
  multi(commands: string[][]): Promise<unknown[]>;
  /**
   * XREAD [COUNT n] [BLOCK ms] STREAMS key id: the entries of one stream after `id`, oldest
   * first; [] when none came (BLOCK timed out) or the stream does not exist. BLOCK holds the
   * connection it runs on: give a long-lived listener its own connection.
   */
  xread(key: string, id: string, options?: XreadOptions): Promise<StreamEntry[]>;
}

/** The part of an ioredis client the adapter uses (ioredis 5 and 6). */
export interface IoredisLike {
  hgetall(key: string): Promise<Record<string, string>>;
  lrange(key: string, start: number, stop: number): Promise<string[]>;
  eval(script: string, numKeys: number, ...keysAndArgs: string[]): Promise<unknown>;
  multi(commands: string[][]): { exec(): Promise<[Error | null, unknown][] | null> };
  call(command: string, args: (string | number)[]): Promise<unknown>;
}

/** The part of a node-redis client the adapter uses (node-redis 4 to 6, connected). */
export interface NodeRedisLike {
  hGetAll(key: string): Promise<unknown>;
  lRange(key: string, start: number, stop: number): Promise<unknown>;
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  multi(): NodeRedisMulti;
  sendCommand(args: string[]): Promise<unknown>;
}

/** node-redis's MULTI builder, as far as the adapter uses it. */
export interface NodeRedisMulti {
  addCommand(args: string[]): unknown;
  exec(): Promise<unknown>;
}

/** An ioredis or a node-redis client. */
export type RedisLike = IoredisLike | NodeRedisLike;

/** The adapter of `client`: node-redis is recognised by its camelCase `hGetAll`. */
export function redisAdapter(client: RedisLike): RedisAdapter {
  return "hGetAll" in client ? fromNodeRedis(client) : fromIoredis(client);
}

/** The adapter of an ioredis client. */
export function fromIoredis(client: IoredisLike): RedisAdapter {
  return {
    hgetall: (key) => client.hgetall(key),
    lrange: (key, start, stop) => client.lrange(key, start, stop),
    eval: (script, keys, args) => client.eval(script, keys.length, ...keys, ...args),
    xread: async (key, id, options = {}) =>
      parseXreadReply(await client.call("XREAD", xreadArgs(key, id, options))),
    async multi(commands) {
      // ioredis looks commands up by their lowercase method names.
      const named = commands.map(([name = "", ...args]) => [name.toLowerCase(), ...args]);
      const replies = await client.multi(named).exec();
      if (replies === null) throw new Error("MULTI was aborted");
      return replies.map(([error, reply]) => {
        if (error) throw error;
        return reply;
      });
    },
  };
}

/** The adapter of a node-redis client (call `await client.connect()` before using it). */
export function fromNodeRedis(client: NodeRedisLike): RedisAdapter {
  return {
    hgetall: async (key) => toStringRecord(await client.hGetAll(key)),
    lrange: async (key, start, stop) => toStrings(await client.lRange(key, start, stop)),
    eval: (script, keys, args) => client.eval(script, { keys, arguments: args }),
    xread: async (key, id, options = {}) =>
      parseXreadReply(await client.sendCommand(["XREAD", ...xreadArgs(key, id, options)])),
    async multi(commands) {
      const multi = client.multi();
      for (const command of commands) multi.addCommand(command);
      const replies = await multi.exec();
      if (!Array.isArray(replies)) throw new Error("MULTI was aborted");
      // Raw commands (addCommand) come back untransformed: a hash is a flat array in RESP2.
      return replies.map((reply, i) =>
        commands[i]?.[0]?.toUpperCase() === "HGETALL" ? toStringRecord(reply) : reply,
      );
    },
  };
}

function xreadArgs(key: string, id: string, { blockMs, count }: XreadOptions): string[] {
  const args: string[] = [];
  if (count !== undefined) args.push("COUNT", String(count));
  if (blockMs !== undefined) args.push("BLOCK", String(blockMs));
  return [...args, "STREAMS", key, id];
}

/**
 * The entries of an XREAD reply for one stream: RESP2 `[[key, [[id, [field, value, ...]], ...]]]`,
 * RESP3 `{key: [[id, ...]]}` (a Map, an object, or flattened `[key, entries]` as ioredis 6 gives
 * it), node-redis's parsed `[{name, messages: [{id,
 * message}]}]`, or null (nothing came) → `[]`.
 */
export function parseXreadReply(reply: unknown): StreamEntry[] {
  if (reply === null || reply === undefined) return [];
  let streams: unknown[];
  if (reply instanceof Map) streams = [...reply.values()];
  else if (Array.isArray(reply) && !Array.isArray(reply[0]) && typeof reply[0] !== "object") {
    streams = reply.filter((_, i) => i % 2 === 1); // a RESP3 map flattened: [key, entries, ...]
  } else if (Array.isArray(reply)) streams = reply.map(streamEntries);
  else if (typeof reply === "object") streams = Object.values(reply);
  else throw new TypeError(`unexpected XREAD reply: ${String(reply)}`);
  const out: StreamEntry[] = [];
  for (const entries of streams) {
    if (!Array.isArray(entries)) continue;
    for (const entry of entries) {
      if (Array.isArray(entry)) out.push({ id: String(entry[0]), fields: toStringRecord(entry[1]) });
      else if (entry !== null && typeof entry === "object" && "id" in entry) {
        // node-redis's parsed shape, should a version hand it back: {id, message}.
        const { id, message } = entry as { id: unknown; message?: unknown };
        out.push({ id: String(id), fields: toStringRecord(message) });
      }
    }
  }
  return out;
}

/** RESP2 `[key, entries]`, or node-redis's parsed `{name, messages}`: the entries. */
function streamEntries(stream: unknown): unknown {
  if (Array.isArray(stream)) return stream[1];
  if (stream !== null && typeof stream === "object" && "messages" in stream) return stream.messages;
  return stream;
}

function toStringRecord(reply: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
  } else if (reply instanceof Map) {
    for (const [k, v] of reply) out[String(k)] = String(v);
  } else if (reply !== null && typeof reply === "object") {
    for (const [k, v] of Object.entries(reply)) out[k] = String(v);
  }
  return out;
}

function toStrings(reply: unknown): string[] {
  return Array.isArray(reply) ? reply.map(String) : [];
}
