"""Which installed fonts can draw a text, asked per character, so class names are drawn whenever some font has their
glyphs (DejaVu Sans, which Matplotlib ships, draws Latin, Greek and Cyrillic; Debian's ``fonts-noto-cjk`` adds Chinese,
Japanese and Korean) and stand as numbers with a legend otherwise.

One numbering everywhere: a class's number is its index in the model's class order (the checkpoint's, the run's
``class_names``), in every picture of every command.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from matplotlib import font_manager
from matplotlib.ft2font import FT2Font

# Tried first, in this order; every other installed font after them. Matplotlib's "Last Resort" font is never used:
# it has an entry for every character, but draws a box naming the character's block, not the character.
PREFERRED = ("DejaVu Sans", "Noto Sans", "Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans CJK TC",
             "Noto Sans CJK KR", "Source Han Sans SC", "WenQuanYi Zen Hei", "Droid Sans Fallback")
PLACEHOLDER_FONTS = ("Last Resort",)
FONT_PACKAGES = "fonts-noto-cjk (Chinese, Japanese, Korean) or fonts-noto-core"  # Debian's, named in hints


@dataclass(frozen=True)
class Font:
    """An installed font: its family name (Matplotlib's) and file (Pillow's)."""

    name: str
    path: str


@functools.lru_cache(maxsize=1)
def installed_fonts() -> tuple[Font, ...]:
    """The fonts Matplotlib knows, regular weight first, in :data:`PREFERRED` order then by name."""
    entries = [entry for entry in font_manager.fontManager.ttflist
               if not entry.name.startswith(PLACEHOLDER_FONTS) and entry.fname.lower().endswith((".ttf", ".otf",
                                                                                                 ".ttc"))]
    regular = sorted(entries, key=lambda e: (e.name not in PREFERRED,
                                             PREFERRED.index(e.name) if e.name in PREFERRED else 0,
                                             e.style != "normal", e.weight != 400, e.name, e.fname))
    return tuple(dict.fromkeys(Font(entry.name, entry.fname) for entry in regular))


@functools.lru_cache(maxsize=64)
def _characters(path: str) -> frozenset[int]:
    try:
        return frozenset(FT2Font(path).get_charmap())
    except (OSError, RuntimeError):  # a font file FreeType cannot read draws nothing
        return frozenset()


@functools.lru_cache(maxsize=4096)
def font_for(character: str) -> Font | None:
    """The first installed font with a glyph for ``character`` (None: no font has one)."""
    return next((font for font in installed_fonts() if ord(character) in _characters(font.path)), None)


def fonts_for(texts: Iterable[str]) -> list[Font] | None:
    """The fonts that together draw every character of ``texts``, in the order first needed; None when some
    character has no glyph in any installed font."""
    needed: dict[Font, None] = {}
    for character in {ch for text in texts for ch in text if not ch.isspace()}:
        font = font_for(character)
        if font is None:
            return None
        needed[font] = None
    first = installed_fonts()[0] if installed_fonts() else None
    return sorted(needed, key=lambda font: (font != first, installed_fonts().index(font)))


def drawable(text: str) -> str:
    """``text`` with each character no installed font can draw written as its code (``\\u70df``)."""
    return "".join(ch if ch.isspace() or font_for(ch) is not None else f"\\u{ord(ch):04x}" for ch in text)


@dataclass(frozen=True)
class ClassLabels:
    """How a picture names classes: ``labels`` (the names, or their numbers), the font ``family`` that draws them
    (Matplotlib's fallback list), and a ``legend`` (number: name) when numbers stand for names."""

    labels: list[str]
    family: list[str]
    legend: list[str] | None

    def of(self, index: int) -> str:
        return self.labels[index]


def class_labels(class_names: Sequence[str]) -> ClassLabels:
    """Class names when the installed fonts draw every character of them, else the class numbers (each name's index,
    the model's class order) with a legend that maps number to name."""
    fonts = fonts_for(class_names)
    if fonts is not None:
        return ClassLabels(list(class_names), [font.name for font in fonts] or ["sans-serif"], None)
    legend = [f"{i}: {drawable(name)}" for i, name in enumerate(class_names)]
    return ClassLabels([str(i) for i in range(len(class_names))], ["sans-serif"], legend)


def missing_glyphs_note() -> str:
    """One line under a legend: why numbers stand for names, and what to install."""
    return f"numbers stand for class names the installed fonts cannot draw (install {FONT_PACKAGES})"
