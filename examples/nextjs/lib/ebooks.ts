// One client per server process, shared by the route handlers (Next.js keeps modules alive
// between requests; in development, globalThis survives hot reloads).
import { createEbookClient, type EbookPoolClient } from "@ebook-pool/client";
import { Redis } from "ioredis";

export const REDIS_URL = process.env.REDIS_URL ?? "redis://localhost:6379/0";
export const KEY_PREFIX = process.env.KEY_PREFIX ?? "ebook";

const globals = globalThis as typeof globalThis & { ebookPool?: EbookPoolClient };

export function ebooks(): EbookPoolClient {
  globals.ebookPool ??= createEbookClient({ redis: new Redis(REDIS_URL), prefix: KEY_PREFIX });
  return globals.ebookPool;
}

/**
 * A connection of its own for one progress listener: XREAD BLOCK holds the connection it runs
 * on, so listeners never share the route handlers' client. Disconnect it when the listener ends.
 */
export function listenerConnection(): Redis {
  return new Redis(REDIS_URL);
}
