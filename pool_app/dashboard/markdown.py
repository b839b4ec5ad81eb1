"""Markdown → safe HTML for the dashboard: escape everything first, then a small renderer.

A page is text written by a model: it must never reach the browser as HTML. The whole text is
HTML-escaped before anything else, and the renderer only adds its own tags around escaped text:
headings, paragraphs, bullet and numbered lists, block quotes, fenced code, rules, and inline
bold, italic and code. Links and images stay plain text (no URL from a page becomes an
attribute), so there is no `javascript:` or tracking pixel to worry about.
"""

from __future__ import annotations

import html
import re

__all__ = ["render_markdown"]

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^\s*[-*+]\s+(.*)$")
_NUMBERED = re.compile(r"^\s*\d{1,9}[.)]\s+(.*)$")
_QUOTE = re.compile(r"^&gt;\s?(.*)$")  # the text is escaped already: ">" is "&gt;"
_RULE = re.compile(r"^\s*([-*_])(\s*\1){2,}\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC = re.compile(r"(?<![\w*])([*_])(?=\S)(.+?)(?<=\S)\1(?![\w*])")


def render_markdown(text: str) -> str:
    """`text` (Markdown) as HTML that contains no markup from `text` itself."""
    lines = html.escape(text, quote=True).replace("\r\n", "\n").split("\n")
    out: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []
    list_tag = ""
    quote: list[str] = []
    i = 0

    def flush() -> None:
        nonlocal list_tag
        if paragraph:
            out.append(f"<p>{_inline(' '.join(paragraph))}</p>")
            paragraph.clear()
        if items:
            body = "".join(f"<li>{_inline(item)}</li>" for item in items)
            out.append(f"<{list_tag}>{body}</{list_tag}>")
            items.clear()
            list_tag = ""
        if quote:
            out.append(f"<blockquote><p>{_inline(' '.join(quote))}</p></blockquote>")
            quote.clear()

    while i < len(lines):
        line = lines[i]
        opening = _FENCE.match(line)
        if opening:
            flush()
            fence = opening.group(1)
            code: list[str] = []
            i += 1
            while i < len(lines) and not lines[i].lstrip().startswith(fence):
                code.append(lines[i])
                i += 1
            out.append(f"<pre><code>{chr(10).join(code)}</code></pre>")
            i += 1
            continue
        stripped = line.strip()
        heading = _HEADING.match(stripped)
        bullet = _BULLET.match(line)
        listed = bullet or _NUMBERED.match(line)
        quoted = _QUOTE.match(stripped)
        if not stripped:
            flush()
        elif heading:
            flush()
            level = len(heading.group(1))
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif _RULE.match(stripped):
            flush()
            out.append("<hr>")
        elif listed is not None:
            tag = "ul" if bullet is not None else "ol"
            if paragraph or quote or (items and list_tag != tag):
                flush()
            list_tag = tag
            items.append(listed.group(1))
        elif quoted:
            if paragraph or items:
                flush()
            quote.append(quoted.group(1))
        elif items and line.startswith((" ", "\t")):
            items[-1] += " " + stripped  # a list item's continuation line
        else:
            if items or quote:
                flush()
            paragraph.append(stripped)
        i += 1
    flush()
    return "\n".join(out)


def _inline(text: str) -> str:
    """Bold, italic and code spans in already escaped text."""
    parts = _CODE.split(text)
    # Odd positions are code spans: no emphasis inside them.
    for n in range(len(parts)):
        if n % 2:
            parts[n] = f"<code>{parts[n]}</code>"
        else:
            chunk = _BOLD.sub(r"<strong>\2</strong>", parts[n])
            parts[n] = _ITALIC.sub(r"<em>\2</em>", chunk)
    return "".join(parts)
