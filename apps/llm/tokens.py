"""Token estimates without tiktoken (it downloads its encodings at run time, which the portal never does).

`estimate_tokens` splits text with cl100k_base's own pre-tokenisation regex, then prices each piece by
what BPE does to pieces of that shape: short common words are one token, long words one per ~4-5
letters, digits in groups of three, punctuation runs one per ~2-3 characters, CJK about one per
character, other non-Latin scripts one per ~2.5 characters. Measured against real cl100k counts:

    text                                              cl100k  estimate
    "Hello world"                                          2         2
    "Hello, world!"                                        4         4
    "The quick brown fox jumps over the lazy dog."        10        10
    "1234567890"                                           4         4
    "antidisestablishmentarianism"                         6         6
    docs/ARCHITECTURE.md's "Cross-cutting" prose       ~1.3 tokens/word   1.38 tokens/word (805 chars -> 175)

On English prose expect about ±10 %; single short strings are usually exact.

It errs high on code, JSON, rare words and non-Latin scripts: the estimate feeds budget reservations
and a fallback for providers that report no usage, where overestimating is the safe side. Real usage
reported by a provider always wins over an estimate.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata

# cl100k_base's pre-tokenisation pattern, in stdlib `re` (no `regex` dependency): \p{L} is [^\W\d_],
# \p{N} is \d, and "neither letter nor number" is [^\w] or an underscore.
_PIECES = re.compile(
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|(?:[^\r\n\w]|_)?[^\W\d_]+|\d{1,3}| ?(?:[^\s\w]|_)+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_HUMP = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")  # applied after folding to ASCII

# OpenAI's documented chat framing: each message costs ~3 tokens beyond its content, a name one more,
# and every reply is primed with 3.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
IMAGE_TOKENS = 765  # one 1024x1024 image at high detail; the usual upper-middle case


def _word_cost(letters: str) -> float:
    if _CJK.search(letters):
        cjk = len(_CJK.findall(letters))
        return cjk * 1.2 + _word_cost(_CJK.sub("", letters)) if len(letters) > cjk else cjk * 1.2
    if not letters.isascii():
        ascii_share = sum(ch.isascii() for ch in letters) / len(letters)
        if ascii_share < 0.5:  # Cyrillic, Greek, Arabic, Hebrew, Devanagari…: short merges only
            return max(1.0, len(letters) / 2.5)
        letters = unicodedata.normalize("NFKD", letters).encode("ascii", "ignore").decode() or "x"
    humps = _HUMP.findall(letters)
    if len(humps) > 1:  # camelCase and PascalCase split where the case changes
        return sum(_word_cost(h) for h in humps)
    n = len(letters)
    if letters.isupper() and n > 3:
        return math.ceil(n / 3)
    if n <= 7:
        return 1.0
    if n <= 10:
        return 1.5
    if n <= 13:
        return 2.0
    return n / 4.5


def _piece_cost(piece: str) -> float:
    first = piece[0]
    if piece.isspace():
        return 1.0
    if first.isdigit():
        return 1.0
    if first == "'" and len(piece) <= 3 and piece[1:].isalpha():
        return 1.0
    body = piece.lstrip(" ")
    letters = "".join(ch for ch in body if ch.isalpha())
    if letters:
        prefix = len(body) - len(letters)  # a leading punctuation mark usually merges, sometimes not
        return _word_cost(letters) + (0.3 if prefix else 0.0)
    symbols = body.rstrip("\r\n")
    return max(1.0, len(symbols) / 2.5) if symbols else 1.0


def estimate_tokens(text: str) -> int:
    """Approximate cl100k_base token count of `text` (0 for empty text)."""
    if not text:
        return 0
    return max(1, round(sum(_piece_cost(piece) for piece in _PIECES.findall(text))))


def _content_tokens(content) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return estimate_tokens(content)
    if isinstance(content, list):  # content parts: text, image_url, input_audio…
        total = 0
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                total += estimate_tokens(str(part.get("text", "")))
            elif isinstance(part, dict) and part.get("type") in ("image_url", "input_image", "image"):
                total += IMAGE_TOKENS
            else:
                total += estimate_tokens(json.dumps(part, default=str))
        return total
    return estimate_tokens(json.dumps(content, default=str))


def estimate_messages_tokens(messages: list[dict], tools: list[dict] | None = None) -> int:
    """Approximate prompt tokens of a chat request: contents, per-message framing, tool calls and schemas."""
    total = REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE
        total += _content_tokens(message.get("content"))
        if message.get("name"):
            total += TOKENS_PER_NAME + estimate_tokens(str(message["name"]))
        for call in message.get("tool_calls") or ():
            function = call.get("function", {}) if isinstance(call, dict) else {}
            total += 3 + estimate_tokens(str(function.get("name", ""))) + estimate_tokens(
                str(function.get("arguments", "")))
    if tools:
        total += estimate_tokens(json.dumps(tools, separators=(",", ":")))
    return total


def message_text(message: dict) -> str:
    """The text of a chat message, whether its content is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""
