"""Griffe extension: laber's reST-flavoured docstrings rewritten as the Markdown that mkdocstrings renders.

laber's docstrings are written in a light reST: ``double backticks`` (already a Markdown code span),
``text::`` literal blocks, ``.. math::`` directives, ``:class:`x``` / ``:func:`` / ``:mod:`` roles, simple
tables (``====  ====`` borders) and the ``\\s`` escape after a code span. The docstring parser (Google or numpy
sections) and Markdown see them only after this rewrite, done once when griffe has loaded the package:

* ``.. math:: tex`` or ``.. math::`` + an indented block -> a ``$$ ... $$`` block (pymdownx.arithmatex; the
  ``mathml`` hook then renders it as MathML);
* ``text::`` + an indented block -> ``text:`` + a fenced code block (``::`` alone on its line is dropped);
* ``:class:`laber.X``` and friends -> an optional cross-reference (a link where ``laber.X`` is documented on
  the site, plain code elsewhere, never a broken link);
* a simple table -> a Markdown table;
* ``\\s`` (and any backslash before a letter) right after a code span -> the letter alone;
* a numpy-style ``Parameters`` section (``Parameters`` + a dashed underline, ``name:`` lines with indented
  descriptions) -> a Google-style ``Args:`` section, the style of the other docstrings, so one parser reads
  them all and the section ends where its indentation does;
* a doctest block (lines from ``>>>`` to the next blank line) -> a fenced ``pycon`` block (Markdown would read
  ``>>>`` as nested quotes);
* a ``Raises:`` section in free text (not ``Error: description`` items) -> a paragraph "Raises: ...", which the
  Google parser would otherwise drop.

An unknown directive (``.. name::``) is an error, so a new construct fails the strict build instead of
rendering as text.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj):`~?([^`]+)`")
_ESCAPE_AFTER_CODE = re.compile(r"``\\(?=\w)")
_DIRECTIVE = re.compile(r"^(\s*)\.\. ([\w-]+)::\s*(.*)$")
_TABLE_BORDER = re.compile(r"^(\s*)(=+)( +=+)+\s*$")
_NUMPY_PARAMS = re.compile(r"^(\s*)Parameters\s*$")
_RAISES = re.compile(r"^(\s*)Raises:\s*$")
_RAISES_ITEM = re.compile(r"^[\w.]+(?:\s*[,/]\s*[\w.]+)*:\s")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _block(lines: list[str], start: int, base: int) -> tuple[list[str], int]:
    """The indented block that follows ``lines[start - 1]``: lines indented more than ``base`` (blank lines
    inside included), dedented; returns it and the index of the first line after it."""
    i = start
    while i < len(lines) and not lines[i].strip():
        i += 1
    body: list[str] = []
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > base):
        body.append(lines[i])
        i += 1
    while body and not body[-1].strip():
        body.pop()
    return textwrap.dedent("\n".join(body)).split("\n") if body else [], i


def _table(lines: list[str], start: int) -> tuple[list[str], int] | None:
    """A reST simple table starting at ``lines[start]`` (its top border) as Markdown rows, and the index after it."""
    top = _TABLE_BORDER.match(lines[start])
    if top is None:
        return None
    pad = top.group(1)
    spans = [(m.start(), m.end()) for m in re.finditer(r"=+", lines[start])]
    rows: list[list[str]] = []
    borders = 1
    i = start + 1
    while i < len(lines) and borders < 3:
        line = lines[i]
        if _TABLE_BORDER.match(line):
            borders += 1
        elif line.strip():
            cells = []
            for k, (a, _b) in enumerate(spans):
                end = spans[k + 1][0] if k + 1 < len(spans) else len(line)
                cells.append(line[a:end].strip())
            rows.append(cells)
        i += 1
    if borders < 3 or len(rows) < 2:
        return None
    out = [pad + "| " + " | ".join(rows[0]) + " |", pad + "|" + "---|" * len(spans)]
    out += [pad + "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows[1:]]
    return out, i


def _role(match: re.Match[str], resolve: Callable[[str], str]) -> str:
    target = match.group(1).strip()
    title = target.split(".")[-1] if "~" in match.group(0) else target
    return f'<autoref identifier="{resolve(target)}" optional><code>{title}</code></autoref>'


def rst_to_markdown(text: str, resolve: Callable[[str], str] = lambda name: name) -> str:
    """The Markdown form of one docstring (see the module docstring); ``resolve`` maps a role's target (``x``
    in ``:class:`x```) to the identifier to link to."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        numpy = _NUMPY_PARAMS.match(line)
        if numpy is not None and i + 1 < len(lines) and re.fullmatch(r"\s*-{3,}\s*", lines[i + 1]):
            pad = numpy.group(1)
            out.append(pad + "Args:")
            i += 2
            while i < len(lines) and lines[i].strip() and _indent(lines[i]) >= len(pad):
                out.append(pad + "    " + lines[i][len(pad) :])
                i += 1
            continue
        raises = _RAISES.match(line)
        if raises is not None:
            body, j = _block(lines, i + 1, len(raises.group(1)))
            if body and not _RAISES_ITEM.match(body[0]):
                out += [raises.group(1) + "**Raises:** " + " ".join(b.strip() for b in body), ""]
                i = j
                continue
        if line.lstrip().startswith(">>> "):
            pad = " " * _indent(line)
            j = i
            while j < len(lines) and lines[j].strip():
                j += 1
            out += ["", pad + "```pycon", *(pad + b[len(pad) :] for b in lines[i:j]), pad + "```", ""]
            i = j
            continue
        directive = _DIRECTIVE.match(line)
        if directive is not None:
            pad, name, rest = directive.groups()
            if name != "math":
                raise ValueError(f"unsupported reST directive '.. {name}::' in docstring: {line.strip()!r}")
            body, i = _block(lines, i + 1, len(pad))
            tex = ([rest] if rest else []) + [b for b in body if b.strip()]
            out += ["", pad + "$$", *(pad + t for t in tex), pad + "$$", ""]
            continue
        table = _table(lines, i) if _TABLE_BORDER.match(line) else None
        if table is not None:
            rows, i = table
            out += ["", *rows, ""]
            continue
        if line.rstrip().endswith("::") and not line.rstrip().endswith(":::"):
            stripped = line.rstrip()
            pad = _indent(line)
            body, j = _block(lines, i + 1, pad)
            if body:
                if stripped.strip() != "::":
                    out.append(stripped[:-2].rstrip() if stripped.endswith(" ::") else stripped[:-1])
                # A literal block inside a list item goes at the item's content indentation (Markdown needs 4).
                fence_pad = " " * (pad + 4 if re.match(r"\s*(?:[*-]|\d+\.) ", line) else pad)
                out += ["", fence_pad + "```text", *(fence_pad + b if b else "" for b in body), fence_pad + "```", ""]
                i = j
                continue
        out.append(line)
        i += 1
    text = "\n".join(out)
    text = _ROLE.sub(lambda m: _role(m, resolve), text)
    return _ESCAPE_AFTER_CODE.sub("``", text)


def _resolve(obj: griffe.Object, name: str) -> str:
    """A role target as written in ``obj``'s docstring -> its full path: a name of the enclosing class or module
    (``:class:`LaBERmean``` in ``laber.laber``) becomes ``laber.laber.LaBERmean``; dotted names stay."""
    if "." in name:
        return name
    scope: griffe.Object | None = obj
    while scope is not None:
        if name in scope.members:
            return f"{scope.path}.{name}"
        scope = scope.parent
    return name


def _walk(obj: griffe.Object, seen: set[int]) -> None:
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if obj.docstring is not None:
        obj.docstring.value = rst_to_markdown(obj.docstring.value, lambda name: _resolve(obj, name))
    for member in obj.members.values():
        if not member.is_alias:
            _walk(member, seen)  # type: ignore[arg-type]


class RestToMarkdown(griffe.Extension):
    """Rewrites every docstring of a loaded package (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        _walk(pkg, set())
