/**
 * The pool's progress events (docs/contract.md, section 8), as `subscribeProgress` yields them:
 * each entry of `{prefix}:ebook:{ebookId}:events` is `{data: <event JSON>, state}`; the event is
 * validated against the generated `ProgressEvent` schema and given its stream id.
 */
import { WireFormatError } from "./errors.js";
import { ProgressEvent, type StateEvent } from "./generated/wire.js";
import type { StreamEntry } from "./redis.js";

/**
 * A progress event with its stream id, the shape of a `{prefix}:events` channel message too.
 * `id` is null for a state event the client derived from the status hash rather than read from
 * the stream (see `subscribeProgress`): it cannot be resumed from.
 */
export type ProgressMessage = ProgressEvent & { id: string | null };

/** The states after which an ebook is finished (until a retry). */
const FINISHED: ReadonlySet<string> = new Set(["done", "failed", "partial"]);

/** The event is a state event announcing a finished ebook: the last event of its stream. */
export function isFinalEvent(event: ProgressEvent): event is StateEvent & { type: "state" } {
  return event.type === "state" && FINISHED.has(event.state);
}

/**
 * The event of one stream entry, validated, with its stream id.
 *
 * @throws WireFormatError if the entry has no `data` or it is not a `ProgressEvent`.
 */
export function parseProgressEntry(entry: StreamEntry): ProgressMessage {
  const data = entry.fields["data"];
  if (data === undefined) throw new WireFormatError(`progress event ${entry.id} has no data field`);
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch {
    throw new WireFormatError(`progress event ${entry.id} is not JSON`);
  }
  const parsed = ProgressEvent.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new WireFormatError(
      `progress event ${entry.id}: ${issue?.path.join(".") || "event"}: ${issue?.message ?? "invalid"}`,
    );
  }
  return { ...parsed.data, id: entry.id };
}
