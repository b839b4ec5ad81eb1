/**
 * Building an ebook's page jobs, checked the way the pool checks them, before anything is pushed.
 */
import { PageJob } from "./generated/wire.js";

/** The pool's default MAX_JOB_BYTES: the largest job payload, in UTF-8 bytes. */
export const DEFAULT_MAX_JOB_BYTES = 65_536;
/** Outline entries the pool's prompts show on each side of a page (pool/job.py OUTLINE_RADIUS). */
export const OUTLINE_RADIUS = 3;
/** The pattern of an ebook or job id (it becomes part of Redis key names). */
export const ID_PATTERN = /^[A-Za-z0-9_.:@+=/-]{1,200}$/;

/** What the app knows about a book; each page's job is built from it. */
export interface EbookBrief {
  /** Title of the ebook (not blank). */
  title: string;
  /** One heading per page; its length is the number of pages. Give this or `pages`. */
  outline?: string[];
  /** Number of pages, when there is no outline. */
  pages?: number;
  topic?: string;
  instructions?: string;
  /** Language to write in, e.g. "English" (the pool's default) or "pt-BR". */
  language?: string;
  style?: string;
  audience?: string;
  targetWords?: number;
  model?: string;
  maxTokens?: number;
  temperature?: number;
  /** Opaque to the pool; copied into every stored page. */
  metadata?: Record<string, unknown>;
}

/** The brief or one page of it breaks the contract; nothing was pushed. */
export class InvalidEbookError extends Error {
  override name = "InvalidEbookError";
  constructor(
    message: string,
    /** The page the problem is in, when it is one page's. */
    readonly pageIndex?: number,
  ) {
    super(message);
  }
}

const TEXT_FIELDS = [
  "title",
  "topic",
  "instructions",
  "language",
  "style",
  "audience",
  "model",
] as const;

/**
 * The page jobs of one ebook, in page order, each validated against the contract: the
 * generated `PageJob` schema, plus what JSON Schema cannot say (pageIndex < totalPages, strings
 * trimmed as the pool trims them, at most `maxJobBytes` UTF-8 bytes).
 *
 * Each page carries the window of the outline its prompt shows (`outlineStart` and
 * `OUTLINE_RADIUS` entries on each side), not the whole outline, so a job's size does not grow
 * with the book.
 *
 * @throws InvalidEbookError naming the page and the field.
 */
export function buildJobs(
  ebookId: string,
  brief: EbookBrief,
  { maxJobBytes = DEFAULT_MAX_JOB_BYTES }: { maxJobBytes?: number } = {},
): PageJob[] {
  if (!ID_PATTERN.test(ebookId)) {
    throw new InvalidEbookError(
      `ebookId ${JSON.stringify(ebookId)} is not an id: 1-200 of A-Z a-z 0-9 _ . : @ + = / -`,
    );
  }
  const outline = brief.outline?.map((h) => h.trim());
  const totalPages = outline?.length ?? brief.pages;
  if (outline !== undefined && brief.pages !== undefined && brief.pages !== outline.length) {
    throw new InvalidEbookError(`the outline has ${outline.length} entries but pages is ${brief.pages}`);
  }
  if (totalPages === undefined) throw new InvalidEbookError("give an outline or a number of pages");
  if (!Number.isInteger(totalPages) || totalPages < 1 || totalPages > 10_000) {
    throw new InvalidEbookError(`the ebook must have 1 to 10,000 pages, not ${totalPages}`);
  }
  const common: Record<string, unknown> = {};
  for (const field of TEXT_FIELDS) {
    const value = brief[field];
    if (value !== undefined) common[field] = typeof value === "string" ? value.trim() : value;
  }
  for (const field of ["targetWords", "maxTokens", "temperature", "metadata"] as const) {
    if (brief[field] !== undefined) common[field] = brief[field];
  }
  const encoder = new TextEncoder();
  const jobs: PageJob[] = [];
  for (let pageIndex = 0; pageIndex < totalPages; pageIndex++) {
    const job: Record<string, unknown> = { v: 1, ebookId, pageIndex, totalPages, ...common };
    if (outline !== undefined) {
      const start = Math.max(0, pageIndex - OUTLINE_RADIUS);
      job.pageTitle = outline[pageIndex];
      job.outline = outline.slice(start, pageIndex + OUTLINE_RADIUS + 1);
      if (start > 0) job.outlineStart = start;
    }
    jobs.push(checkJob(job, { maxJobBytes, encoder }));
  }
  return jobs;
}

/**
 * One job checked as the pool checks it: the schema, pageIndex < totalPages, and the size.
 *
 * @throws InvalidEbookError naming the page and the field.
 */
export function checkJob(
  job: unknown,
  { maxJobBytes = DEFAULT_MAX_JOB_BYTES, encoder = new TextEncoder() } = {},
): PageJob {
  const page = pageOf(job);
  const where = page === undefined ? "job" : `page ${page}`;
  const parsed = PageJob.safeParse(job);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue?.path.join(".") || "job";
    throw new InvalidEbookError(`${where}: ${path}: ${issue?.message ?? "invalid"}`, page);
  }
  const valid = parsed.data;
  if (valid.pageIndex >= valid.totalPages) {
    throw new InvalidEbookError(
      `${where}: pageIndex ${valid.pageIndex} is out of range for totalPages ${valid.totalPages}`,
      page,
    );
  }
  const bytes = encoder.encode(JSON.stringify(valid)).length;
  if (bytes > maxJobBytes) {
    throw new InvalidEbookError(
      `${where}: the job is ${bytes} bytes, over the pool's ${maxJobBytes}-byte limit ` +
        "(MAX_JOB_BYTES): shorten its topic, instructions or metadata",
      page,
    );
  }
  return valid;
}

function pageOf(job: unknown): number | undefined {
  if (job !== null && typeof job === "object" && "pageIndex" in job) {
    const index = (job as { pageIndex: unknown }).pageIndex;
    if (typeof index === "number") return index;
  }
  return undefined;
}
