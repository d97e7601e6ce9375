"""Text a human reader does not see but a model does: invisible characters, hidden HTML, and
base64 blobs that decode to instructions."""

import base64
import binascii
import re
import unicodedata
from collections.abc import Callable, Iterator

from .findings import InjectionFinding, InjectionKind
from .injection_rules import INSTRUCTION_WORDS

H = InjectionKind.HIDDEN_TEXT

# Zero-width space/non-joiner/joiner, word joiner, invisible operators, BOM, Mongolian vowel separator.
_ZERO_WIDTH = re.compile(r"[\u200b-\u200d\u2060-\u2064\ufeff\u180e]+")
# Unicode tag characters mirror ASCII invisibly; besides emoji flags they have no legitimate use.
_TAGS = re.compile(r"[\U000e0000-\U000e007f]+")
_BIDI_OVERRIDE = re.compile(r"[\u202d\u202e]")  # LRO / RLO: reorder what the reader sees
_BIDI_EMBED = re.compile(r"[\u202a-\u202c\u2066-\u2069]")  # embeddings and isolates
_RTL_LETTER = re.compile(r"[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufeff]")
_STYLED_TAG = re.compile(
    r"<(?P<tag>[a-zA-Z][\w-]*)\b[^<>]{0,300}?\bstyle\s*=\s*(?P<q>[\"'])(?P<style>[^\"']{0,500})(?P=q)[^<>]{0,300}>"
)
_WHITE = re.compile(r"^(?:white|#fff|#ffffff|rgba?\(\s*255\s*,\s*255\s*,\s*255\s*(?:,\s*1(?:\.0*)?\s*)?\))$")
_BASE64_BLOB = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{24,20000}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX_BLOB = re.compile(r"(?<![0-9A-Za-z])(?:[0-9A-Fa-f]{2}){12,10000}(?![0-9A-Za-z])")
_IMPORTANT = re.compile(r"\s*!important$")
_ZERO_LENGTH = re.compile(r"0(?:\.0*)?(?:px|pt|em|rem|%)?")
_FAR_NEGATIVE = re.compile(r"-\d{4,}(?:px|pt|em|rem)?")  # left:-9999px and the like
_TWO_WORDS = re.compile(r"[A-Za-z]{3,}\s+[A-Za-z]{2,}")
_EMOJI_FLAG_BASE = "\U0001f3f4"  # waving black flag: tag characters after it spell a subdivision flag


def find_hidden_text(text: str) -> Iterator[InjectionFinding]:
    yield from _zero_width_runs(text)
    yield from _tag_characters(text)
    yield from _bidi_controls(text)
    yield from _html_comments(text)
    yield from _hidden_elements(text)


def _zero_width_runs(text: str) -> Iterator[InjectionFinding]:
    for match in _ZERO_WIDTH.finditer(text):
        run, start = match.group(), match.start()
        before, after = text[start - 1 : start], text[match.end() : match.end() + 1]
        if run == "\ufeff" and start == 0:
            continue  # a byte-order mark at the start of a file
        if len(run) == 1 and run in "\u200c\u200d" and _joins_legitimately(before, after):
            continue
        if len(run) >= 4:
            confidence, why = 0.9, f"A run of {len(run)} invisible characters, enough to encode hidden data."
        elif before.isascii() and before.isalpha() and after.isascii() and after.isalpha():
            confidence, why = (
                0.75,
                "An invisible character inside a word, which can split a keyword to evade filters.",
            )
        else:
            confidence, why = 0.5, "An invisible zero-width character."
        yield InjectionFinding(H, start, match.end(), run, confidence, why)


def _joins_legitimately(before: str, after: str) -> bool:
    """ZWJ inside emoji sequences and ZWNJ/ZWJ in scripts such as Persian or Devanagari are ordinary."""
    if not before or not after:
        return False
    if _is_pictographic(before) and _is_pictographic(after):
        return True
    if before.isascii() or after.isascii():
        return False
    # Between two letters of a non-Latin script, or after one of its combining vowel signs.
    return (before.isalpha() and after.isalpha()) or unicodedata.category(before).startswith("M")


def _is_pictographic(char: str) -> bool:
    if char == "\ufe0f":  # emoji presentation selector
        return True
    return ord(char) >= 0x2600 and unicodedata.category(char) in ("So", "Sk", "Mn", "Cn")


def _tag_characters(text: str) -> Iterator[InjectionFinding]:
    for match in _TAGS.finditer(text):
        run = match.group()
        if (
            text[match.start() - 1 : match.start()] == _EMOJI_FLAG_BASE
            and run.endswith("\U000e007f")
            and len(run) <= 7
        ):
            continue  # a subdivision flag such as England's
        hidden = "".join(chr(ord(char) - 0xE0000) for char in run if 0x20 <= ord(char) - 0xE0000 < 0x7F)
        yield InjectionFinding(
            H,
            match.start(),
            match.end(),
            run,
            0.95,
            f"Invisible Unicode tag characters that spell: {_preview(hidden)!r}.",
        )


def _bidi_controls(text: str) -> Iterator[InjectionFinding]:
    for match in _BIDI_OVERRIDE.finditer(text):
        yield InjectionFinding(
            H,
            match.start(),
            match.end(),
            match.group(),
            0.8,
            "A bidirectional override character, which makes text display in a different order than it is read.",
        )
    for match in _BIDI_EMBED.finditer(text):
        nearby = text[max(0, match.start() - 20) : match.end() + 20]
        if _RTL_LETTER.search(nearby):
            continue  # embedding and isolating right-to-left text is what these characters are for
        yield InjectionFinding(
            H,
            match.start(),
            match.end(),
            match.group(),
            0.6,
            "A bidirectional control character in left-to-right text, which can hide or reorder text.",
        )


def _html_comments(text: str) -> Iterator[InjectionFinding]:
    # str.find rather than a lazy regex: many unclosed "<!--" would make a regex rescan the text.
    start = text.find("<!--")
    while start != -1:
        end = text.find("-->", start + 4)
        if end == -1:
            return
        end += 3
        if INSTRUCTION_WORDS.search(text, start + 4, end - 3):
            confidence, why = 0.85, "An HTML comment, invisible when rendered, that contains instructions."
        else:
            confidence, why = 0.35, "An HTML comment, invisible when rendered."
        yield InjectionFinding(H, start, end, text[start:end], confidence, why)
        start = text.find("<!--", end)


def _hidden_elements(text: str) -> Iterator[InjectionFinding]:
    lowered = text.lower() if "style" in text.lower() else ""
    for match in _STYLED_TAG.finditer(lowered and text):
        how = _how_style_hides(match.group("style"))
        if not how:
            continue
        # The element ends at its closing tag (nesting of the same tag is not followed).
        close = lowered.find(f"</{match.group('tag').lower()}", match.end(), match.end() + 3000)
        if close == -1:
            continue
        closing_bracket = text.find(">", close)
        end = close if closing_bracket == -1 else closing_bracket + 1
        body = text[match.end() : close].strip()
        if not body:
            continue
        if INSTRUCTION_WORDS.search(body):
            confidence, why = 0.9, f"An element hidden by CSS ({how}) that contains instructions."
        else:
            confidence, why = 0.45, f"An element hidden by CSS ({how})."
        yield InjectionFinding(H, match.start(), end, text[match.start() : end], confidence, why)


def _how_style_hides(style: str) -> str | None:
    declarations = {}
    for declaration in style.split(";"):
        name, _, value = declaration.partition(":")
        declarations[name.strip().lower()] = _IMPORTANT.sub("", value.strip().lower())
    if declarations.get("display") == "none":
        return "display:none"
    if declarations.get("visibility") == "hidden":
        return "visibility:hidden"
    if _ZERO_LENGTH.fullmatch(declarations.get("font-size", "-")):
        return "font-size:0"
    if _ZERO_LENGTH.fullmatch(declarations.get("opacity", "-")):
        return "opacity:0"
    color = declarations.get("color", "")
    background = declarations.get("background-color", declarations.get("background", ""))
    for offset in ("left", "top", "text-indent", "margin-left"):
        if _FAR_NEGATIVE.fullmatch(declarations.get(offset, "-")):
            return f"moved off-screen with {offset}"
    if "rect(0" in declarations.get("clip", "") or (
        declarations.get("width") in ("0", "0px") and declarations.get("height") in ("0", "0px")
    ):
        return "clipped to nothing"
    if color == "transparent":
        return "transparent text"
    if color and (
        color == background or (_WHITE.match(color) and (not background or _WHITE.match(background)))
    ):
        return "text in the background colour"
    return None


def find_encoded_instructions(
    text: str, scan_phrases: Callable[[str], list[InjectionFinding]]
) -> Iterator[InjectionFinding]:
    """Base64 or hex blobs whose decoded text reads as an instruction; `scan_phrases` checks the decoded text."""
    blobs = [(match, _decode_base64_text(match.group()), "Base64") for match in _BASE64_BLOB.finditer(text)]
    blobs += [(match, _decode_hex_text(match.group()), "Hex") for match in _HEX_BLOB.finditer(text)]
    for match, decoded, encoding in blobs:
        if decoded is None:
            continue
        inner = scan_phrases(decoded)
        if inner:
            strongest = max(inner, key=lambda finding: finding.confidence)
            confidence = max(0.8, strongest.confidence)
            why = f"{encoding} that decodes to {_preview(decoded)!r}: {strongest.explanation}"
        elif INSTRUCTION_WORDS.search(decoded):
            confidence, why = (
                0.7,
                f"{encoding} that decodes to text reading like an instruction: {_preview(decoded)!r}.",
            )
        else:
            continue
        yield InjectionFinding(
            InjectionKind.ENCODED_INSTRUCTIONS, match.start(), match.end(), match.group(), confidence, why
        )


def _decode_base64_text(blob: str) -> str | None:
    padded = blob + "=" * (-len(blob) % 4)
    try:
        raw = base64.urlsafe_b64decode(padded) if ("-" in blob or "_" in blob) else base64.b64decode(padded)
    except (binascii.Error, ValueError):
        return None
    return _readable(raw)


def _decode_hex_text(blob: str) -> str | None:
    return _readable(bytes.fromhex(blob))


def _readable(raw: bytes) -> str | None:
    """`raw` as text when it is readable UTF-8 prose, else None (images, keys, hashes)."""
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(char.isprintable() or char in "\n\t" for char in decoded)
    if len(decoded) < 12 or printable < 0.95 * len(decoded) or not _TWO_WORDS.search(decoded):
        return None
    return decoded


def _preview(value: str, limit: int = 80) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"
