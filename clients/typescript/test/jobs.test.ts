import assert from "node:assert/strict";
import { test } from "node:test";

import { InvalidEbookError, OUTLINE_RADIUS, PageJob, buildJobs, checkJob } from "../src/index.js";

const HEADING = "h".repeat(246);

test("a 300-page book with 250-character headings fits: each job carries its outline window", () => {
  const outline = Array.from({ length: 300 }, (_, i) => `${String(i).padStart(3, "0")} ${HEADING}`);
  const jobs = buildJobs("long-1", { title: "Long", outline });
  assert.equal(jobs.length, 300);
  const sizes = jobs.map((j) => new TextEncoder().encode(JSON.stringify(j)).length);
  assert.ok(Math.max(...sizes) < 4096, `largest job ${Math.max(...sizes)} bytes`);
  const middle = jobs[150]!;
  assert.equal(middle.outlineStart, 150 - OUTLINE_RADIUS);
  assert.deepEqual(middle.outline, outline.slice(147, 154));
  assert.equal(middle.pageTitle, outline[150]);
  assert.equal(jobs[0]!.outlineStart, undefined);
});

test("pageIndex >= totalPages is refused though the JSON Schema cannot say so", () => {
  const job = { ebookId: "e", pageIndex: 3, totalPages: 3, title: "T" };
  assert.equal(PageJob.safeParse(job).success, true);
  assert.throws(() => checkJob(job), /page 3: pageIndex 3 is out of range for totalPages 3/);
});

test("a blank title is refused by the generated schema, naming the page", () => {
  assert.throws(
    () => buildJobs("e", { title: "   ", pages: 2 }),
    (err: unknown) => err instanceof InvalidEbookError && err.pageIndex === 0 && /title/.test(err.message),
  );
});

test("a job over MAX_JOB_BYTES (UTF-8 bytes, not characters) is refused, naming the page", () => {
  const brief = { title: "T", pages: 2, topic: "é".repeat(600) }; // 600 characters, 1200 bytes
  assert.doesNotThrow(() => buildJobs("e", brief, { maxJobBytes: 2000 }));
  assert.throws(
    () => buildJobs("e", brief, { maxJobBytes: 1200 }),
    /page 0: the job is \d+ bytes, over the pool's 1200-byte limit/,
  );
});

test("ids, unknown fields, non-integers and page counts are checked", () => {
  assert.throws(() => buildJobs("has space", { title: "T", pages: 1 }), /is not an id/);
  assert.throws(() => buildJobs("e", { title: "T", pages: 0 }), /1 to 10,000 pages/);
  assert.throws(() => buildJobs("e", { title: "T", outline: ["a"], pages: 2 }), /1 entries but pages is 2/);
  assert.throws(() => buildJobs("e", { title: "T", pages: 1, targetWords: 300.5 }), /targetWords/);
  assert.throws(() => checkJob({ ebookId: "e", pageIndex: 0, totalPages: 1, title: "T", tittle: "x" }));
});

test("optional fields accept null (unset), as the pool does", () => {
  const job = { ebookId: "e", pageIndex: 0, totalPages: 1, title: "T", topic: null, model: null };
  assert.equal(checkJob(job).topic, null);
});

test("strings are trimmed as the pool trims them before the limits apply", () => {
  const [job] = buildJobs("e", { title: "  Title  ", pages: 1, language: " pt-BR " });
  assert.equal(job!.title, "Title");
  assert.equal(job!.language, "pt-BR");
});
