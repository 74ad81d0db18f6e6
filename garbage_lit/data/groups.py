"""The four broad garbage_classify groups ("group/item" class names), in Chinese and English."""

from __future__ import annotations

GROUPS_EN = {"其他垃圾": "other", "厨余垃圾": "kitchen", "可回收物": "recyclable", "有害垃圾": "hazardous"}


def garbage_group(class_name: str) -> tuple[str, str] | None:
    """``("可回收物", "recyclable")`` for ``"可回收物/易拉罐"``; None for names without a known group."""
    group, separator, _ = class_name.partition("/")
    if separator and group in GROUPS_EN:
        return group, GROUPS_EN[group]
    return None
