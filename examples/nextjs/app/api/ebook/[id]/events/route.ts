// GET /api/ebook/{id}/events: server-sent events, one `progress` event per change of the
// ebook's progress, until it is finished or the browser goes away (request.signal).
import { UnknownEbookError } from "@ebook-pool/client";

import { ebooks } from "../../../../../lib/ebooks.js";

export const dynamic = "force-dynamic"; // never cache a stream

export async function GET(
  request: Request,
  { params }: { params: Promise<{ id: string }> },
): Promise<Response> {
  const { id } = await params;
  const encoder = new TextEncoder();
  const stream = new ReadableStream<Uint8Array>({
    async start(controller) {
      const send = (event: string, data: unknown) =>
        controller.enqueue(encoder.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`));
      try {
        for await (const progress of ebooks().subscribeProgress(id, { signal: request.signal })) {
          send("progress", progress);
        }
        send("end", { ebookId: id });
      } catch (err) {
        if (err instanceof UnknownEbookError) send("error", { error: err.message });
        else if (!request.signal.aborted) throw err;
      } finally {
        controller.close();
      }
    },
  });
  return new Response(stream, {
    headers: {
      "Content-Type": "text/event-stream; charset=utf-8",
      "Cache-Control": "no-cache, no-transform",
      Connection: "keep-alive",
    },
  });
}
