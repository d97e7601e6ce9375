"""E-mail addresses and phone numbers."""

import re
from collections.abc import Iterator

from ..findings import PiiFinding, PiiType
from .context import clamp, has_cue, text_before

# Local part and labels are bounded so a long run of word characters costs O(n), not O(n^2).
_EMAIL = re.compile(
    r"(?<![\w.%+-])"
    r"[^\W_](?:[\w.%+'-]{0,62}[\w%+-])?"
    r"@"
    r"((?:[^\W_](?:[\w-]{0,61}[^\W_])?\.){1,8}([^\W\d_]{2,24}))"
    r"(?![\w-]|\.[^\W_])"
)
# "name dot surname at gmail dot com": people write addresses like this to dodge scrapers.
_SPELLED_EMAIL = re.compile(
    r"(?i)(?<![\w.])[a-z][\w-]{0,40}(?:\s*(?:\.|\(dot\)|\[dot\]|\sdot\s)\s*[\w-]{1,40}){0,3}"
    r"\s*(?:\(at\)|\[at\]|\sat\s)\s*"
    r"[a-z0-9][\w-]{0,40}(?:\s*(?:\(dot\)|\[dot\]|\sdot\s)\s*[\w-]{1,40}){0,2}"
    r"\s*(?:\(dot\)|\[dot\]|\sdot\s)\s*(?:com|net|org|edu|gov|io|de|fr|uk|nl|es|it|ch|at|eu|me)\b"
)
_LOCAL_PART_SYMBOLS = frozenset("._%+'-")
# RFC 2606 / 6761 names are placeholders by definition, as in few-shot examples.
_RESERVED_DOMAIN = re.compile(
    r"(?i)(?:^|\.)(?:example\.(?:com|org|net)|[\w-]+\.(?:example|test|invalid|localhost))$"
)
# "logo@2x.png" is a file name: these endings are not top-level domains.
_FILE_EXTENSIONS = frozenset({
    "png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "tif", "tiff", "ico", "heic", "css", "js", "mjs", "ts",
    "tsx", "jsx", "html", "htm", "json", "yaml", "yml", "txt", "pdf", "csv", "xml", "lock", "toml", "ini", "cfg", "log",
})  # fmt: skip


def find_emails(text: str) -> Iterator[PiiFinding]:
    # Search only around each "@": scanning every position of a long text costs far more.
    position = 0
    at = text.find("@")
    while at != -1:
        match = _email_around(text, at, position)
        if match:
            position = match.end()
            finding = _email_finding(text, match)
            if finding:
                yield finding
        at = text.find("@", max(at + 1, position))
    lowered = text.lower()
    if " dot " in lowered or "(dot)" in lowered or "[dot]" in lowered:
        for match in _SPELLED_EMAIL.finditer(text):
            yield PiiFinding(PiiType.EMAIL, match.start(), match.end(), match.group(), 0.6)


def _email_around(text: str, at: int, earliest: int) -> re.Match[str] | None:
    """The address whose "@" is at `at`: walk back over the local part, then match forwards once."""
    start, floor = at, max(earliest, at - 64)
    while start > floor and (text[start - 1] in _LOCAL_PART_SYMBOLS or text[start - 1].isalnum()):
        start -= 1
    begin = next((index for index in range(start, at) if text[index].isalnum()), None)
    match = _EMAIL.match(text, begin) if begin is not None else None
    return match if match and match.end() > at else None


def _email_finding(text: str, match: re.Match[str]) -> PiiFinding | None:
    domain, tld = match.group(1), match.group(2)
    if tld.lower() in _FILE_EXTENSIONS:
        return None
    confidence = 0.95
    if _RESERVED_DOMAIN.search(domain):
        confidence = 0.4
    elif text.startswith(":", match.end()) and text[match.end() + 1 : match.end() + 2].strip():
        confidence = 0.3  # scp-style ssh target, e.g. git@github.com:org/repo.git
    return PiiFinding(PiiType.EMAIL, match.start(), match.end(), match.group(), confidence)


# A phone candidate: runs of digits joined by single separators. Possessive digit runs keep a
# long run of digits linear. It may swallow a trailing number ("call 555-867-5309 2 times"), so the
# validator also tries shorter prefixes. A bare digit run right after another number is usually
# part of that number, so it may not start a candidate, except right after a phone number found.
_PHONE_BODY = (
    r"(?:(?:[ \u00a0]?[-./][ \u00a0]?|[ \u00a0])(?:\([0-9]{1,4}+\)|[0-9]++)|\([0-9]{1,4}+\)|(?<=\))[0-9]++){0,7}"
    r"(?![\w]|[.,-][0-9])"
)
# Starts with a character class (lookbehinds come after it) so the regex engine can skip ahead fast.
_PHONE_CANDIDATE = re.compile(
    r"[+(0-9](?:"
    r"(?<=\+)(?<![^\W\d]\+)(?<![+_]\+)[0-9]++"  # +49 ...
    r"|(?<=\()(?<![\w+#/.,-]\()\+?[0-9]{1,5}+\)"  # (030) ...
    r"|(?<=[0-9])(?<![\w+#/.,-][0-9])(?<![0-9] [0-9])(?<![0-9]\u00a0[0-9])(?<![0-9]-[0-9])[0-9]*+"  # 030 ...
    r")" + _PHONE_BODY
)
_PHONE_CANDIDATE_NEXT = re.compile(
    r"(?:[ \t\u00a0,;/]{1,3}|(?=[(+]))((?:\+[0-9]++|\(\+?[0-9]{1,5}+\)|[0-9]++)" + _PHONE_BODY + ")"
)
_PHONE_GROUP = re.compile(r"\(?\+?\d+\)?")
_NANP = re.compile(r"^(?:\+?1[-. ]?)?(?:\([2-9]\d\d\)[ ]?|[2-9]\d\d[-. ])[2-9]\d\d[-. ]\d{4}$")
# A date, possibly followed by a time ("05.03.2019 14:22" is cut at the colon into "05.03.2019 14").
_DATE_LIKE = re.compile(r"^\d{1,4}([-./])\d{1,2}\1\d{1,4}(?:$|[ T])")
_PHONE_CUE = re.compile(
    r"(?i)\b(?:phone|tel|telephone|telefon|mobile?|cell|cellphone|call|calling|dial|fax|whats\s?app|sms|"
    r"text|contact|reach|hotline|helpline|ring|handy|ruf|rufnummer|t[ée]l[ée]phone|t[ée]l|portable|"
    r"num[ée]ro|m[óo]vil|tel[ée]fono|cellulare|gsm|landline)\b"
)
# Words right before a number that make it an identifier rather than a phone number.
_ID_CUE = re.compile(
    r"(?i)(?:\b(?:order|invoice|inv|ticket|ref|reference|id|no|nr|account|acct|iban|tracking|serial|sku|"
    r"isbn|batch|lot|case|build|version|customer|kundennummer|rechnungsnummer|part|po|transaction|mrn|"
    r"policy|contract|member)\b|#)\W{0,3}$"
)


def find_phones(text: str) -> Iterator[PiiFinding]:
    position = 0
    while match := _PHONE_CANDIDATE.search(text, position):
        position = match.end()
        finding = _best_phone_prefix(text, match.start(), match.group())
        while finding is not None:
            yield finding
            position = finding.end  # the rest of the candidate may hold the next number
            follower = _PHONE_CANDIDATE_NEXT.match(text, finding.end)
            finding = follower and _best_phone_prefix(text, follower.start(1), follower.group(1))


def _best_phone_prefix(text: str, start: int, candidate: str) -> PiiFinding | None:
    """The most telling prefix wins: "555-867-5309" (US format) over "555-867-5309 2" (a cued digit run)."""
    if len(candidate) < 7 or _digit_count(candidate) < 7:
        return None  # cheap exit for the many short numbers in prose
    scored = [
        (_phone_confidence(text, start, candidate[:end]), end)
        for end in (group.end() for group in _PHONE_GROUP.finditer(candidate))
    ]
    confidence = max(score for score, _ in scored)
    if not confidence:
        return None
    ends = [end for score, end in scored if score == confidence]
    end = ends[-1]
    if candidate.startswith(("+", "00")):
        # International numbers rarely exceed 10-13 digits: stop at the first complete one rather
        # than run into the next number ("+49 30 12345678 536-22-1407").
        end = next((e for e in ends if _digit_count(candidate[:e]) >= 10), end)
    return PiiFinding(PiiType.PHONE, start, start + end, candidate[:end], confidence)


def _phone_confidence(text: str, start: int, number: str) -> float:
    """0 when `number` is not shaped like a phone number; otherwise a confidence by format."""
    digits = _digit_count(number)
    has_separator = not number.isdigit()
    cue = has_cue(text, start, _PHONE_CUE, width=40)
    if number.startswith("+"):
        base = 0.8 if 8 <= digits <= 15 else 0.0
    elif number.startswith("00") and has_separator:
        base = 0.75 if 10 <= digits <= 15 else 0.0
    elif _NANP.match(number):
        base = 0.7
    elif number.lstrip("(").startswith("0") and has_separator:
        base = 0.6 if 9 <= digits <= 12 else 0.0
    elif number.startswith("(") and has_separator:
        base = 0.6 if 9 <= digits <= 12 else 0.0  # area code in brackets: "(11) 98765-4321"
    elif cue:
        # Numbers without a trunk prefix ("512 345 678") or bare runs count only when introduced
        # as a phone number.
        base = 0.5 if 9 <= digits <= 13 else 0.0
    else:
        base = 0.0
    if not base or _DATE_LIKE.match(number):
        return 0.0
    if cue:
        base += 0.1
    elif _ID_CUE.search(text_before(text, start, 24)):
        base -= 0.3
    return clamp(min(base, 0.85))


def _digit_count(value: str) -> int:
    return sum(char.isdigit() for char in value)
