// POST /api/ebook: queue a new ebook; answers 202 with its id, or 400 naming the bad field/page.
import { randomUUID } from "node:crypto";

import { InvalidEbookError } from "@ebook-pool/client";
import { z } from "zod";

import { ebooks } from "../../../lib/ebooks.js";

const Body = z.object({
  title: z.string(),
  outline: z.array(z.string()).min(1).max(10_000),
  topic: z.string().optional(),
  language: z.string().optional(),
  style: z.string().optional(),
  audience: z.string().optional(),
  targetWords: z.number().int().optional(),
});

export async function POST(request: Request): Promise<Response> {
  const body = Body.safeParse(await request.json().catch(() => null));
  if (!body.success) return Response.json({ error: z.prettifyError(body.error) }, { status: 400 });
  const { title, outline, ...rest } = body.data;
  const brief = { title, outline, ...definedOnly(rest) };
  try {
    const { ebookId, totalPages } = await ebooks().enqueueEbook(randomUUID(), brief);
    return Response.json({ ebookId, totalPages }, { status: 202 });
  } catch (err) {
    if (err instanceof InvalidEbookError) return Response.json({ error: err.message }, { status: 400 });
    throw err;
  }
}

/** Drops undefined values (the client's options are exact: absent, not undefined). */
function definedOnly<T extends object>(value: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as never;
}
