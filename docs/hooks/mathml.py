"""MkDocs hook: the TeX that pymdownx.arithmatex marks (``$...$``, ``$$...$$``, ``.. math::`` in docstrings) as
MathML, rendered at build time by latex2mathml.

Browsers draw MathML natively (MathML Core: Chromium, Firefox, Safari), so the site needs no JavaScript and no
network to show its formulas. A formula latex2mathml cannot convert fails the build, naming the page.

MathML does not wrap a formula wider than the column, so a display formula whose parts are separated by a
top-level ``\\qquad`` (outside braces and environments, as laber's docstrings write two equations side by side)
is shown one part per line.
"""

from __future__ import annotations

import html
import re
from typing import Any

from latex2mathml.converter import convert

_MATH = re.compile(
    r'<(?P<tag>span|div) class="arithmatex">\s*(?:\\\((?P<inline>.*?)\\\)|\\\[(?P<block>.*?)\\\])\s*</(?P=tag)>',
    re.DOTALL,
)


def _split_qquad(tex: str) -> list[str]:
    """``tex`` cut at its top-level ``\\qquad`` separators."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(tex):
        if tex.startswith("\\begin{", i):
            depth += 1
        elif tex.startswith("\\end{", i):
            depth -= 1
        elif tex[i] == "\\" and i + 1 < len(tex):
            if depth == 0 and tex.startswith("\\qquad", i) and not tex[i + 6 : i + 7].isalpha():
                parts.append(tex[start:i])
                start = i + 6
            i += 2
            continue
        elif tex[i] == "{":
            depth += 1
        elif tex[i] == "}":
            depth -= 1
        i += 1
    parts.append(tex[start:])
    return [part.strip() for part in parts if part.strip()]


def _render(match: re.Match[str], where: str) -> str:
    inline = match.group("inline")
    tex = html.unescape(inline if inline is not None else match.group("block"))
    parts = [tex] if inline is not None else _split_qquad(tex)
    try:
        mathml = "".join(convert(part, display="inline" if inline is not None else "block") for part in parts)
    except Exception as exc:  # latex2mathml raises a variety of exceptions
        raise ValueError(f"{where}: cannot render the formula {tex!r} as MathML: {exc}") from exc
    if inline is not None:
        return f'<span class="arithmatex">{mathml}</span>'
    return f'<div class="arithmatex">{mathml}</div>'


def on_page_content(html_text: str, page: Any, **kwargs: Any) -> str:
    return _MATH.sub(lambda m: _render(m, page.file.src_path), html_text)
