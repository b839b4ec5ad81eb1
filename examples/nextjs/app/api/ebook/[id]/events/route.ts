// GET /api/ebook/{id}/events: the pool's progress events of the ebook as server-sent events,
// until its final state (done, failed, partial) or until the browser goes away.
//
// Each SSE message is one event (`data:` its JSON: `type` "page" or "state", see ProgressEvent)
// with `id:` its stream id, so the browser's EventSource resumes where it stopped: it sends the
// last id as `Last-Event-ID` when it reconnects (or pass ?lastEventId=). A state event derived
// from the status hash (the stream had none to give) has no id. After the final state comes
// `event: end`; close the EventSource then, or it reconnects and gets the final state again.
import { type ProgressMessage, UnknownEbookError, subscribeProgress } from "@ebook-pool/client";

import { KEY_PREFIX, listenerConnection } from "../../../../../lib/ebooks.js";

export const runtime = "nodejs"; // ioredis needs Node, not the Edge runtime
export const dynamic = "force-dynamic"; // never cache a stream

const KEEP_ALIVE_MS = 15_000; // an SSE comment, so proxies do not drop a quiet stream

export async function GET(
  request: Request,
  { params }: { params: Promise<{ id: string }> },
): Promise<Response> {
  const { id } = await params;
  const lastEventId =
    request.headers.get("last-event-id") ?? new URL(request.url).searchParams.get("lastEventId");
  const encoder = new TextEncoder();
  const redis = listenerConnection();
  const stream = new ReadableStream<Uint8Array>({
    async start(controller) {
      const send = (text: string) => controller.enqueue(encoder.encode(text));
      const keepAlive = setInterval(() => send(": keep-alive\n\n"), KEEP_ALIVE_MS);
      try {
        const events = subscribeProgress(redis, id, {
          prefix: KEY_PREFIX,
          signal: request.signal,
          ...(lastEventId ? { lastEventId } : {}),
        });
        for await (const event of events) send(toSse(event));
        send(`event: end\ndata: ${JSON.stringify({ ebookId: id })}\n\n`);
        controller.close();
      } catch (err) {
        if (err instanceof UnknownEbookError) {
          send(`event: error\ndata: ${JSON.stringify({ error: err.message })}\n\n`);
          controller.close();
        } else if (!request.signal.aborted) controller.error(err);
      } finally {
        clearInterval(keepAlive);
        redis.disconnect();
      }
    },
    cancel() {
      redis.disconnect();
    },
  });
  return new Response(stream, {
    headers: {
      "Content-Type": "text/event-stream; charset=utf-8",
      "Cache-Control": "no-cache, no-transform",
      Connection: "keep-alive",
      "X-Accel-Buffering": "no", // no proxy buffering
    },
  });
}

/** One SSE message: `id:` the stream id (when the event has one), `data:` the event's JSON. */
function toSse({ id, ...event }: ProgressMessage): string {
  return `${id === null ? "" : `id: ${id}\n`}data: ${JSON.stringify(event)}\n\n`;
}
