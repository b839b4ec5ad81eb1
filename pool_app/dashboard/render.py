"""The HTML of the ebook page (and its live part) and of the failed-job page.

Every value is escaped; only each page's text goes in as HTML, already made safe by
`pool_app.dashboard.markdown` (escaped first, then rendered).
"""

from __future__ import annotations

import contextlib
import html
import json
from typing import Any

from pool.clock import iso
from pool_app.dashboard.common import EBOOK_ID

__all__ = ["ebook_body", "ebook_live", "failed_body"]

_NONE = "\u2013"  # an en dash: what a missing value shows


def _when(ms: Any) -> str:
    return iso(ms).replace("T", " ")[:19] + " UTC" if isinstance(ms, int) else _NONE


def _e(value: Any) -> str:
    return html.escape(_NONE if value is None else str(value))


def _progress(done: int, failed: int, total: int) -> str:
    """A progress bar the page's script draws (the CSP allows no inline style)."""
    return (
        f'<div class="bar" data-done="{done}" data-failed="{failed}" data-total="{total}" '
        f'title="{done}/{total} done, {failed} failed"></div>'
    )


def ebook_body(ebook_id: str, d: dict[str, Any]) -> str:
    """The ebook page: its state, progress, cost, export links and live part."""
    q = html.escape(ebook_id)
    ledger = d["ledger"]
    cost = (
        f"${d['cost']:.4f}</b><small>{ledger['requests']:,} requests, "
        f"{ledger['wastedTokens']:,} tokens wasted</small>"
    )
    return f"""<p><a href="/">← overview</a></p>
<h1>Ebook <code>{_e(ebook_id)}</code></h1>
<section class="cards">
  <div class="card"><h3>State</h3><b id="e-state" class="state {_e(d["state"])}">{_e(d["state"])}</b>
    <small id="e-when">created {_when(d["createdAt"])}</small></div>
  <div class="card wide"><h3>Progress</h3>
    <div id="e-bar">{_progress(d["done"], d["failed"], d["total"])}</div>
    <small id="e-counts">{d["done"]}/{d["total"]} pages done, {d["failed"]} failed, {d["pending"]} pending</small></div>
  <div class="card"><h3>Cost</h3><b id="e-cost">{cost}</div>
  <div class="card"><h3>Export</h3><b><a id="e-export" href="/ebook/export.md?id={q}" download>Markdown ↓</a></b>
    <small>the pages written so far, also as <a href="/ebook/export.html?id={q}" download>HTML</a>
    and <a href="/ebook/export.epub?id={q}" download>EPUB</a></small></div>
</section>
<div id="ebook-live">{ebook_live(ebook_id, d)}</div>"""


def ebook_live(ebook_id: str, d: dict[str, Any]) -> str:
    """The part of the ebook page that is re-rendered as pages land: failures and pages."""
    tokens = f"{d['promptTokens']:,} prompt + {d['completionTokens']:,} completion tokens"
    failures = []
    for p in d["pages"]:
        if p["status"] == "failed":
            failures.append(
                f'<tr><td>{p["pageIndex"] + 1}</td><td class="err">{_e(p.get("error"))}</td></tr>'
            )
    jobs = [
        f"<tr><td>{_when(j['failedAt'])}</td><td>{_e(j['errorType'])}</td>"
        f"<td>{_NONE if j['pageIndex'] is None else j['pageIndex'] + 1}</td>"
        f'<td class="err">{_e(j["error"])}</td>'
        f'<td><a class="open" href="/failed/{_e(j["id"])}">open</a></td></tr>'
        for j in d["failedJobs"]
    ]
    parts = [f'<p class="muted" id="e-tokens">{tokens}</p>']
    if failures or jobs:
        parts.append('<section class="panel"><h2>Failures</h2>')
        if failures:
            parts.append(
                '<table class="grid"><thead><tr><th>Page</th><th>Reason</th></tr></thead>'
                f"<tbody>{''.join(failures)}</tbody></table>"
            )
        if jobs:
            parts.append(
                '<h3>In the failed list</h3><table class="grid" id="e-failed"><thead><tr>'
                "<th>Failed at</th><th>Type</th><th>Page</th><th>Error</th><th></th></tr></thead>"
                f"<tbody>{''.join(jobs)}</tbody></table>"
            )
        parts.append("</section>")
    pages = []
    for p in d["pages"]:
        n = p["pageIndex"] + 1
        if p["status"] != "done":
            continue
        pages.append(
            f'<article class="page" id="page-{n}"><header>Page {n}'
            f"<small>{_e(p.get('model'))} · attempt {_e(p.get('attempts'))} · "
            f"{_e(p.get('completionTokens'))} tokens</small></header>"
            f"{p['html']}</article>"
        )
    parts.append(
        f'<section class="panel"><h2>Pages <small class="muted">{len(pages)} written</small></h2>'
    )
    parts.append("".join(pages) or '<p class="empty">No page written yet.</p>')
    parts.append("</section>")
    return "\n".join(parts)


def failed_body(row: dict[str, Any]) -> str:
    """The failed-job page: its fields, retry and purge buttons, and its payload."""
    fields = [
        ("Error", row["error"]),
        ("Type", row["errorType"]),
        ("Attempts", row["attempts"]),
        ("Failed at", _when(row["failedAt"])),
        ("Pool process", row["poolId"]),
        ("Job id", row["jobId"]),
        ("Page", None if row["pageIndex"] is None else row["pageIndex"] + 1),
        ("Payload", f"{row['payloadBytes']} bytes, SHA-256 {row['payloadSha256']}"),
    ]
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in fields)
    ebook = row["ebookId"]
    ebook_link = (
        f'<dt>Ebook</dt><dd><a href="/ebook?id={html.escape(ebook)}">{_e(ebook)}</a></dd>'
        if isinstance(ebook, str) and EBOOK_ID.match(ebook)
        else ""
    )
    payload = row["payload"]
    if isinstance(payload, str):
        with contextlib.suppress(ValueError):
            payload = json.dumps(json.loads(payload), indent=2, ensure_ascii=False)
    else:
        payload = f"(not UTF-8; base64) {row['payloadBase64']}"
    note = " (only its first 1 KiB was kept)" if row["payloadTruncated"] else ""
    why_not = (
        ""
        if row["retryable"]
        else (
            '<p class="muted">Retry is off for this job: its payload is invalid or truncated and '
            "would fail again. Fix the producer, then purge it.</p>"
        )
    )
    retry_attr = "" if row["retryable"] else " data-never"
    return f"""<p><a href="/">← overview</a></p>
<h1>Failed job <code>{_e(row["id"])}</code></h1>
<div class="toolbar">
  <span class="action"><button type="button" id="retry-btn" data-action="retry"{retry_attr}>Retry</button></span>
  <span class="action"><button type="button" id="purge-btn" data-action="purge" class="danger">Purge</button></span>
</div>
{why_not}
<section class="panel"><dl class="fields">{ebook_link}{items}</dl></section>
<section class="panel"><h2>Payload{note}</h2><pre class="payload">{_e(payload)}</pre></section>"""
