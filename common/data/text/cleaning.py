"""Documents to clean text: HTML pages (visible body text), man pages (roff), and one normal form for all.

`normalise` gives every document Unix newlines, no trailing spaces and at most one blank line in a row;
`html_to_text` drops navigation, sidebars, scripts and styles and keeps `<pre>` layout; `roff_to_text` joins
filled lines into paragraphs and maps roff escapes to characters.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser


def normalise(text: str) -> str:
    """Unix newlines, no trailing spaces, at most one blank line in a row, no leading/trailing blank lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


_SKIP_TAGS = {"script", "style", "nav", "head", "header", "footer", "noscript", "form", "button", "svg", "template"}
_VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_BLOCK_TAGS = {"p", "div", "section", "article", "main", "aside", "h1", "h2", "h3", "h4", "h5", "h6", "li", "ul", "ol",
               "dl", "dt", "dd", "tr", "table", "pre", "blockquote", "figure", "figcaption", "caption", "body", "td", "th"}
_SKIP_CLASS = re.compile(r"sphinxsidebar|related|footer|headerlink|wy-nav-side|rst-footer|breadcrumb|navheader|"
                         r"navfooter|\btoc\b|switcher|mobile-nav|\bmenu\b|searchbox|docnav|banner|nosearch|"
                         r"prev-next|left-prev|right-next")
_SKIP_ROLE = {"navigation", "search", "contentinfo", "banner"}


class _HTMLText(HTMLParser):
    """Collects visible body text; drops navigation, sidebars, scripts and styles; keeps <pre> layout."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.stack: list[tuple[str, bool]] = []  # (tag, starts a skipped region)
        self.skipping = 0
        self.pre = 0
        self.link = 0
        self.link_chars = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID_TAGS:
            if tag in ("br", "hr") and not self.skipping:
                self.parts.append("\n")
            return
        attr = dict(attrs)
        skip = tag in _SKIP_TAGS or attr.get("role") in _SKIP_ROLE or bool(
            _SKIP_CLASS.search(f"{attr.get('class') or ''} {attr.get('id') or ''}"))
        self.stack.append((tag, skip))
        self.skipping += skip
        self.pre += tag == "pre"
        self.link += tag == "a"
        if tag in _BLOCK_TAGS:
            self.parts.append("\n\n" if tag in ("p", "pre", "h1", "h2", "h3", "h4", "h5", "h6") else "\n")

    def handle_endtag(self, tag: str) -> None:
        if not any(t == tag for t, _ in self.stack):
            return
        while self.stack:
            top, skip = self.stack.pop()
            self.skipping -= skip
            self.pre -= top == "pre"
            self.link -= top == "a"
            if top in _BLOCK_TAGS:
                self.parts.append("\n")
            if top == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        if not self.pre:
            data = re.sub(r"\s+", " ", data)
            if not self.parts or self.parts[-1].endswith("\n"):
                data = data.lstrip()
        self.parts.append(data)
        if self.link:
            self.link_chars += len(data.strip())


def html_to_text(html: str) -> tuple[str, int]:
    """Visible text of an HTML page and how many of its characters are link text (for index-page filtering)."""
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts), parser.link_chars


_ROFF_TEXT_MACROS = {"SH", "SS", "B", "I", "SM", "SB", "BR", "RB", "IR", "RI", "BI", "IB", "TP", "IP", "UR", "MT", "TQ"}
_ROFF_ALT_MACROS = {"BR", "RB", "IR", "RI", "BI", "IB"}
_ROFF_BREAK_MACROS = {"SH", "SS", "PP", "LP", "P", "TP", "IP", "sp", "TQ", "RS", "RE", "EX", "EE", "nf", "fi"}
_ROFF_GLYPHS = {"em": "\u2014", "en": "\u2013", "aq": "'", "dq": '"', "bu": "\u2022", "co": "\u00a9", "lq": '"',
                "rq": '"', "oq": "'", "cq": "'", "ti": "~", "ha": "^", "rs": "\\", "mi": "-", "pl": "+", "mu": "\u00d7",
                "<=": "<=", ">=": ">=", "->": "->", "<-": "<-", "hy": "-", "ga": "`", "sl": "/", "bv": "|"}
_ROFF_ESCAPE = re.compile(r"\\(?:f(?:\[[^\]]*\]|\(..|.)|\((..)|\[([^\]]*)\]|\*(?:\[[^\]]*\]|\(..|.)|s[-+]?\d|"
                          r"[-e&|^c~ 0:%/,!]|.)")


def roff_to_text(roff: str) -> str:
    """Readable text from a man page (man(7) macros): filled lines joined into paragraphs, no-fill blocks
    (.nf/.EX) kept line by line, headings and font macros kept as words, escapes mapped to characters."""
    lines: list[str] = []
    fill, join = True, False  # join: the next filled text line continues the previous one
    for line in roff.split("\n"):
        if line.startswith((".\\\"", "'\\\"", ".so ")):
            continue
        if line.startswith((".", "'")):
            macro, _, rest = line[1:].strip().partition(" ")
            fill = {"nf": False, "EX": False, "fi": True, "EE": True}.get(macro, fill)
            if macro in _ROFF_BREAK_MACROS:
                lines.append("")
                join = False
            if macro not in _ROFF_TEXT_MACROS or not rest:
                continue
            args = [a.strip('"') for a in re.findall(r'"[^"]*"|\S+', rest)]
            line = "".join(args) if macro in _ROFF_ALT_MACROS else " ".join(args)
            if macro in ("SH", "SS"):
                lines.append(_ROFF_ESCAPE.sub(_roff_escape, line))
                lines.append("")
                continue
        text = _ROFF_ESCAPE.sub(_roff_escape, line)
        if fill and join and text.strip():
            lines[-1] = f"{lines[-1]} {text.strip()}"
        else:
            lines.append(text)
        join = fill and bool(text.strip())
    return "\n".join(lines)


def _roff_escape(match: re.Match) -> str:
    token = match.group(0)
    glyph = match.group(1) or match.group(2)
    if glyph is not None:
        return _ROFF_GLYPHS.get(glyph, "")
    if token.startswith("\\*"):
        return _ROFF_GLYPHS.get(token[2:].strip("[]("), "")
    return {"\\-": "-", "\\e": "\\", "\\ ": " ", "\\~": " ", "\\0": " "}.get(token, "")
