"""Metric and parameter names as each tracker accepts them.

Our keys are ``<split>/<name>`` and carry class and bin names (``test/per_class_acc/papier & karton``), which may hold
any character a folder name can. Each tracker allows fewer: MLflow letters and digits (any script), ``_ - . space :
/`` and at most 250 characters; W&B (for sorting and filtering) ASCII letters, digits and ``_`` in each ``/`` section.
:func:`legal_key` makes a key legal for one :class:`KeyRule`, and a :class:`KeyMap` keeps a tracker's keys distinct
and remembers every renamed one. A run plans its keys before training (:meth:`KeyMap.plan`), so no name can fail
after the training, and the renamed keys go to the tracker as a table (``metric_keys.csv``: logged as, key).
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

KEY_TABLE = "metric_keys.csv"   # the renamed keys, as an artifact or table of the tracker's run


@dataclass(frozen=True)
class KeyRule:
    """What a tracker accepts: the characters of a ``/`` section (a regex character class), and the longest key."""

    allowed: str                 # e.g. r"\w.\- :" (MLflow: any script's letters and digits)
    max_length: int = 250
    ascii_only: bool = False     # fold accents (glas grün -> glas grun) before refusing what is left
    leading_letter: bool = False  # a section must not start with a digit (W&B's GraphQL names)


MLFLOW = KeyRule(r"\w.\- :")
WANDB = KeyRule(r"A-Za-z0-9_", max_length=1000, ascii_only=True, leading_letter=True)


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:6]


def legal_key(key: str, rule: KeyRule) -> str:
    """``key`` with every character ``rule`` refuses replaced by ``_``, section by section (``/`` kept).

    A section that loses every letter and digit (a Chinese class name under W&B) is named by a short hash of itself,
    so distinct names stay distinct; a key over the length limit is cut and ends in the hash of the whole key.
    """
    refused = re.compile(f"[^{rule.allowed}]+")
    sections = []
    for section in key.split("/"):
        folded = section
        if rule.ascii_only:
            folded = unicodedata.normalize("NFKD", section).encode("ascii", "ignore").decode()
        legal = refused.sub("_", folded)
        if legal != section:
            legal = legal.strip("_ ")
        if not any(ch.isalnum() for ch in legal):
            legal = f"h{_digest(section)}" if section else ""
        if legal in (".", ".."):
            legal = legal.replace(".", "_")
        if rule.leading_letter and legal[:1].isdigit():
            legal = f"_{legal}"
        sections.append(legal)
    legal = posixpath.normpath("/".join(s for s in sections if s)) if any(sections) else f"h{_digest(key)}"
    if len(legal) > rule.max_length:
        legal = f"{legal[:rule.max_length - 7]}_{_digest(key)}"
    return legal


class KeyMap:
    """A tracker's keys: each made legal by :func:`legal_key`, distinct (keys that would meet get a hash of their own
    name), and remembered when renamed."""

    def __init__(self, rule: KeyRule) -> None:
        self.rule = rule
        self.legal: dict[str, str] = {}   # our key -> the tracker's

    def plan(self, keys: Iterable[str]) -> None:
        """Map ``keys`` (all a run will log, known before training) at once, so keys that would meet are told apart
        the same way in every run, whatever order they are logged in."""
        pending = [key for key in dict.fromkeys(keys) if key not in self.legal]
        candidates = {key: legal_key(key, self.rule) for key in pending}
        taken = set(self.legal.values())
        counts: dict[str, int] = {}
        for legal in candidates.values():
            counts[legal] = counts.get(legal, 0) + 1
        for key, legal in candidates.items():
            if counts[legal] > 1 or (legal in taken and legal != key):
                legal = legal_key(f"{legal}_{_digest(key)}", self.rule)
            self.legal[key] = legal

    def __call__(self, key: str) -> str:
        """The tracker's name for ``key`` (planned now if it was not)."""
        if key not in self.legal:
            self.plan([key])
        return self.legal[key]

    def renamed(self) -> list[dict[str, str]]:
        """Every key the tracker knows under another name: rows ``{"logged_as": its name, "key": ours}``."""
        return [{"logged_as": legal, "key": key} for key, legal in self.legal.items() if legal != key]
