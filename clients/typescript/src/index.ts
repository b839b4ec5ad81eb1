/**
 * @ebook-pool/client: the typed client of the ebook-pool wire contract (docs/contract.md).
 *
 * The zod schemas and types in ./generated/wire.ts are generated from the pool's JSON Schemas
 * (`ebook-pool schema --all`), so they match what the Python pool enforces and writes.
 */
export * from "./generated/wire.js";
export {
  type ClientOptions,
  type EbookPages,
  type EbookState,
  type EbookStatus,
  type EnqueueOptions,
  type EnqueueResult,
  type SubscribeOptions,
  type WaitOptions,
  EbookExistsError,
  EbookPoolClient,
  TERMINAL_STATES,
  UnknownEbookError,
  WireFormatError,
  createEbookClient,
  decodeStatus,
  keysFor,
  subscribeProgress,
} from "./client.js";
export { type ProgressMessage, isFinalEvent, parseProgressEntry } from "./progress.js";
export {
  DEFAULT_MAX_JOB_BYTES,
  type EbookBrief,
  ID_PATTERN,
  InvalidEbookError,
  OUTLINE_RADIUS,
  buildJobs,
  checkJob,
} from "./jobs.js";
export {
  type IoredisLike,
  type NodeRedisLike,
  type NodeRedisMulti,
  type RedisAdapter,
  type RedisLike,
  type StreamEntry,
  type XreadOptions,
  fromIoredis,
  fromNodeRedis,
  parseXreadReply,
  redisAdapter,
} from "./redis.js";
