/**
 * The few Redis calls the client makes, behind one small interface, so ioredis and node-redis
 * both work. Their differences handled here: node-redis needs `await client.connect()` first
 * (the caller's job) and names commands `hGetAll`/`lRange`; its `eval` takes `{ keys,
 * arguments }`; its `multi().exec()` resolves to the replies (and rejects on an error), while
 * ioredis resolves to `[error, reply]` pairs, or null when a WATCH aborted it.
 */

/** What the client needs from Redis: `redisAdapter(client)` builds it; tests may implement it. */
export interface RedisAdapter {
  hgetall(key: string): Promise<Record<string, string>>;
  lrange(key: string, start: number, stop: number): Promise<string[]>;
  eval(script: string, keys: string[], args: string[]): Promise<unknown>;
  /** MULTI, the commands, EXEC: the replies in order; rejects if any command failed. */
  multi(commands: string[][]): Promise<unknown[]>;
}

/** The part of an ioredis client the adapter uses (ioredis 5 and 6). */
export interface IoredisLike {
  hgetall(key: string): Promise<Record<string, string>>;
  lrange(key: string, start: number, stop: number): Promise<string[]>;
  eval(script: string, numKeys: number, ...keysAndArgs: string[]): Promise<unknown>;
  multi(commands: string[][]): { exec(): Promise<[Error | null, unknown][] | null> };
}

/** The part of a node-redis client the adapter uses (node-redis 4 to 6, connected). */
export interface NodeRedisLike {
  hGetAll(key: string): Promise<unknown>;
  lRange(key: string, start: number, stop: number): Promise<unknown>;
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  multi(): NodeRedisMulti;
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
