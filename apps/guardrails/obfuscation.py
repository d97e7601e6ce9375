"""Undo the cheap disguises attackers put on a phrase, so the phrase rules still see it:
invisible characters, full-width and other compatibility forms, Cyrillic/Greek look-alikes,
leetspeak ("1gn0re") and spaced-out letters ("i g n o r e")."""

import re
import unicodedata

# Removed outright; hidden_text reports them separately.
_INVISIBLE = re.compile(
    r"[\u200b-\u200f\u2060-\u2064\ufeff\u180e\u00ad\u202a-\u202e\u2066-\u2069\U000e0000-\U000e007f]"
)
# Letters that render like Latin ones (the common subset used in homoglyph attacks).
_LOOK_ALIKES = str.maketrans(
    "АВЕЅІЈКМНОРСТХУаеіјосрхуѕԁɡΑΒΕΖΗΙΚΜΝΟΡΤΥΧαοερντυκι",
    "ABESIJKMHOPCTXYaeijocpxysdgABEZHIKMNOPTYXaoepvtuki",
)
_LEET_TOKEN = re.compile(r"\b(?=[A-Za-z0-9@$]*[A-Za-z])(?=[A-Za-z0-9@$]*[013457@$])[A-Za-z0-9@$]{3,}\b")
_LEET = str.maketrans("013457@$", "oieastas")
_LEET_HINT = re.compile(r"[A-Za-z][013457@$][A-Za-z]")  # cheap test before the token scan
_SPACED_LETTERS = re.compile(r"[A-Za-z](?<!\S[A-Za-z]) (?:[A-Za-z] ){2,}[A-Za-z](?!\S)")


def deobfuscate(text: str) -> tuple[str, list[int]]:
    """The plain reading of `text`, and for each of its characters (plus the end) the index in `text`."""
    if text.isascii():
        plain, origin = text, list(range(len(text) + 1))
    else:
        plain, origin = _fold_characters(text)
    # Same-length substitution: offsets stay valid.
    if _LEET_HINT.search(plain):
        plain = _LEET_TOKEN.sub(
            lambda match: match.group().translate(_LEET) if not match.group().isdigit() else match.group(),
            plain,
        )
    if _SPACED_LETTERS.search(plain):
        plain, origin = _join_spaced_letters(plain, origin)
    return plain, origin


def _fold_characters(text: str) -> tuple[str, list[int]]:
    parts: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        if char.isascii():
            parts.append(char)
            origin.append(index)
            continue
        if _INVISIBLE.match(char):
            continue
        folded = unicodedata.normalize("NFKC", char).translate(_LOOK_ALIKES)
        parts.append(folded)
        origin.extend([index] * len(folded))
    origin.append(len(text))
    return "".join(parts), origin


def _join_spaced_letters(plain: str, origin: list[int]) -> tuple[str, list[int]]:
    parts: list[str] = []
    new_origin: list[int] = []
    position = 0
    for match in _SPACED_LETTERS.finditer(plain):
        parts.append(plain[position : match.start()])
        new_origin.extend(origin[position : match.start()])
        for offset in range(match.start(), match.end(), 2):  # every other character is a letter
            parts.append(plain[offset])
            new_origin.append(origin[offset])
        position = match.end()
    parts.append(plain[position:])
    new_origin.extend(origin[position:])
    return "".join(parts), new_origin
