"""ComfyUI's prompt emphasis syntax: "(text)", "(text:1.3)", escapes; pure string work, no torch.

The rules, as ComfyUI users know them:
- "(a)" multiplies the weight of "a" by 1.1; each extra pair multiplies again ("((a))" -> 1.21).
- "(a:1.5)" sets the weight of its group to 1.5, replacing what it inherited from enclosing groups;
  groups inside it multiply from there ("((a):2)" -> 2.2). The weight is the text after the last
  ':' and counts only when it parses as a float; otherwise the group is a plain 1.1 group.
- "\\(" and "\\)" are literal parentheses; the backslash is dropped.
- Square brackets have no meaning. Unbalanced parentheses stay in the text as typed.

Group boundaries are also word boundaries for the tokenizer (ComfyUI tokenizes each weighted piece on
its own), which is why `parse_weight_runs` keeps adjacent pieces of equal weight apart while
`parse_weights` merges them.
"""

from __future__ import annotations

import math

EMPHASIS = 1.1

# Escaped parentheses are swapped for private-use characters while the structure is parsed, so that
# they cannot open or close a group, and swapped back to plain parentheses afterwards.
_ESC_OPEN = "\ue000"
_ESC_CLOSE = "\ue001"


def _hide_escapes(text: str) -> str:
    return text.replace("\\(", _ESC_OPEN).replace("\\)", _ESC_CLOSE)


def _restore_escapes(text: str) -> str:
    return text.replace(_ESC_OPEN, "(").replace(_ESC_CLOSE, ")")


def _top_level_pieces(text: str) -> list[str]:
    """Cut text into plain stretches and outermost "(...)" groups (each kept with its parentheses).

    A ')' that closes nothing drives the depth below zero; like ComfyUI, everything up to the point
    where the depth returns to zero then stays in one plain stretch, so a stray ')' never starts a
    group. An unclosed '(' leaves its group's text, parenthesis included, as one plain stretch.
    """
    pieces: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            if depth == 0 and current:
                pieces.append("".join(current))
                current = []
            current.append(char)
            depth += 1
        elif char == ")":
            depth -= 1
            current.append(char)
            if depth == 0:
                pieces.append("".join(current))
                current = []
        else:
            current.append(char)
    if current:
        pieces.append("".join(current))
    return pieces


def _explicit_weight(inner: str) -> tuple[str, float] | None:
    """Split "text:w" into ("text", w) when w is a finite float and text is not empty."""
    colon = inner.rfind(":")
    if colon <= 0:
        return None
    try:
        weight = float(inner[colon + 1 :])
    except ValueError:
        return None
    if not math.isfinite(weight):
        return None
    return inner[:colon], weight


def _runs(text: str, weight: float, out: list[tuple[str, float]]) -> None:
    for piece in _top_level_pieces(text):
        is_group = len(piece) >= 2 and piece[0] == "(" and piece[-1] == ")"
        if not is_group:
            out.append((piece, weight))
            continue
        inner = piece[1:-1]
        explicit = _explicit_weight(inner)
        if explicit is None:
            _runs(inner, weight * EMPHASIS, out)
        else:
            _runs(explicit[0], explicit[1], out)


def parse_weight_runs(text: str) -> list[tuple[str, float]]:
    """Weighted pieces in ComfyUI's boundaries: empty pieces dropped, equal neighbours not merged."""
    out: list[tuple[str, float]] = []
    _runs(_hide_escapes(text), 1.0, out)
    return [(_restore_escapes(piece), weight) for piece, weight in out if piece]


def parse_weights(text: str) -> list[tuple[str, float]]:
    """Weighted pieces of a prompt, adjacent pieces of equal weight merged into one."""
    merged: list[tuple[str, float]] = []
    for piece, weight in parse_weight_runs(text):
        if merged and merged[-1][1] == weight:
            merged[-1] = (merged[-1][0] + piece, weight)
        else:
            merged.append((piece, weight))
    return merged
