"""Looking around a match: the words just before a number often say what it is."""

import re


def text_before(text: str, start: int, width: int = 32) -> str:
    return text[max(0, start - width) : start]


def has_cue(text: str, start: int, cue: re.Pattern[str], width: int = 32) -> bool:
    """Whether `cue` occurs in the `width` characters before `start`."""
    return cue.search(text_before(text, start, width)) is not None


def clamp(confidence: float) -> float:
    return round(min(max(confidence, 0.0), 1.0), 2)
