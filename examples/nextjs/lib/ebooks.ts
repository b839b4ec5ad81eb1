// One client per server process, shared by the route handlers (Next.js keeps modules alive
// between requests; in development, globalThis survives hot reloads).
import { createEbookClient, type EbookPoolClient } from "@ebook-pool/client";
import { Redis } from "ioredis";

const globals = globalThis as typeof globalThis & { ebookPool?: EbookPoolClient };

export function ebooks(): EbookPoolClient {
  globals.ebookPool ??= createEbookClient({
    redis: new Redis(process.env.REDIS_URL ?? "redis://localhost:6379/0"),
    prefix: process.env.KEY_PREFIX ?? "ebook",
  });
  return globals.ebookPool;
}
