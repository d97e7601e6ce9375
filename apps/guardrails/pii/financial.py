"""Payment card numbers, IBANs and US social security numbers: each confirmed by its check rules."""

import re
from collections.abc import Iterator

from ..checksums import IBAN_LENGTHS, card_issuer_known, iban_valid, luhn_valid, ssn_valid
from ..findings import PiiFinding, PiiType
from .context import clamp, has_cue, text_before

# Printed layouts: 4-4-4-4(-3) and Amex/Diners 4-6-5 / 4-6-4, with one consistent separator.
# Patterns start with a character class and check what precedes it afterwards: that lets the
# regex engine skip ahead to the next digit instead of trying every position.
_CARD_GROUPED = re.compile(
    r"[0-9](?<![\w.,-][0-9])"
    r"(?:[0-9]{3}([ -])[0-9]{4}\1[0-9]{4}\1[0-9]{4}(?:\1[0-9]{3})?|[0-9]{3}([ -])[0-9]{6}\2[0-9]{4,5})"
    r"(?![\w]|[.,][0-9])"
)
_NON_DIGIT = re.compile(r"[^0-9]")
_CARD_PLAIN = re.compile(r"[0-9](?<![\w.,-][0-9])[0-9]{12,18}(?![\w]|[.,][0-9])")
_CARD_CUE = re.compile(
    r"(?i)\b(?:card|visa|master\s?card|amex|american express|discover|jcb|diners|maestro|unionpay|"
    r"credit|debit|cc|pan|karte|kreditkarte|carte|tarjeta|carta|charge[ds]?|paid with)\b"
)
_CARD_ID_CUE = re.compile(
    r"(?i)(?:\b(?:order|invoice|ticket|ref|reference|id|tracking|transaction|txn|account|acct|"
    r"imei|serial|gtin|ean|isbn|timestamp|number\s+of)\b|#)\W{0,3}$"
)


def find_cards(text: str) -> Iterator[PiiFinding]:
    for pattern, grouped in ((_CARD_GROUPED, True), (_CARD_PLAIN, False)):
        for match in pattern.finditer(text):
            number = match.group()
            digits = _NON_DIGIT.sub("", number)
            if not luhn_valid(digits) and len(digits) == 19 and grouped:
                number, digits = number[:-4], digits[:-3]  # a 16-digit card followed by another number
            if not luhn_valid(digits):
                continue  # one mistyped digit in ten passes Luhn by chance; nine in ten do not
            if card_issuer_known(digits):
                # Most cards have 15 or 16 digits; a bare run of another length is likelier an id.
                confidence = 0.95 if grouped else 0.85 if len(digits) in (15, 16) else 0.7
            else:
                confidence = 0.4
            if has_cue(text, match.start(), _CARD_CUE, width=40):
                confidence += 0.1
            elif _CARD_ID_CUE.search(text_before(text, match.start(), 24)):
                confidence -= 0.4  # "Transaction id 4111...": labelled as something else
            start = match.start()
            yield PiiFinding(PiiType.CARD, start, start + len(number), number, clamp(min(confidence, 0.98)))


# Country code, check digits, then alphanumerics either compact or in groups of four. The
# candidate may run into the next word ("... 7034 EUR"), so it is cut at the country's length.
# Matched from the check digits (digits are rarer than letters, so the scan is faster); the two
# letters of the country code are checked behind them.
_IBAN_CANDIDATE = re.compile(
    r"[0-9](?<=[A-Za-z]{2}[0-9])(?<![\w][A-Za-z]{2}[0-9])[0-9](?:[ ]?[A-Za-z0-9]){11,32}+"
)


def find_ibans(text: str) -> Iterator[PiiFinding]:
    position = 0
    while match := _IBAN_CANDIDATE.search(text, position):
        # Resume right after the cut, not after the candidate: it may have run into a second IBAN.
        position = match.end()
        start = match.start() - 2
        candidate = text[start : match.end()]
        length = IBAN_LENGTHS.get(candidate[:2].upper())
        if length is None:
            continue
        end = _end_after_alnum(candidate, length)
        if end is None or (end < len(candidate) and candidate[end] != " "):
            continue  # too short, or the cut falls inside a group: not this country's IBAN
        iban = candidate[:end]
        if iban_valid(iban.replace(" ", "")):
            position = start + end
            confidence = 0.95 if iban[:2].isupper() else 0.85  # checksum holds, but odd spelling
            yield PiiFinding(PiiType.IBAN, start, start + end, iban, confidence)


def _end_after_alnum(candidate: str, count: int) -> int | None:
    seen = 0
    for index, char in enumerate(candidate):
        if char != " ":
            seen += 1
            if seen == count:
                return index + 1
    return None


_SSN_GROUPED = re.compile(r"([0-9](?<![\w.-][0-9])[0-9]{2})([- ])([0-9]{2})\2([0-9]{4})(?![\w]|[-.][0-9])")
_SSN_PLAIN = re.compile(r"([0-9](?<![\w.-][0-9])[0-9]{2})([0-9]{2})([0-9]{4})(?![\w]|[-.][0-9])")
# By separator and whether a cue such as "SSN" precedes: "123 45 6789" alone is as likely a reference.
_SSN_CONFIDENCE = {("-", True): 0.95, ("-", False): 0.85, (" ", True): 0.9, (" ", False): 0.4}
_SSN_ID_CUE = re.compile(
    r"(?i)(?:\b(?:part|order|case|ref|reference|id|sku|serial|model|item|ticket|invoice|lot|batch|no|nr)\b|#)\W{0,3}$"
)
_SSN_CUE = re.compile(r"(?i)(?:\bssn|\bss#|\bsocial(?:\s+security)?\b|\bsoc\.?\s*sec\b|\bsozialversicherung)")


def find_ssns(text: str) -> Iterator[PiiFinding]:
    for match in _SSN_GROUPED.finditer(text):
        if not ssn_valid(match.group(1), match.group(3), match.group(4)):
            continue
        cue = has_cue(text, match.start(), _SSN_CUE, width=40)
        confidence = _SSN_CONFIDENCE[(match.group(2), cue)]
        if not cue and _SSN_ID_CUE.search(text_before(text, match.start(), 24)):
            confidence -= 0.4  # "Part 123-45-6789": labelled as something else
        yield PiiFinding(PiiType.SSN, match.start(), match.end(), match.group(), confidence)
    lowered = text.lower()
    if not any(word in lowered for word in ("ssn", "ss#", "social", "soc", "sozialversicherung")):
        return  # a bare nine-digit run counts only next to a cue, so skip the scan without one
    for match in _SSN_PLAIN.finditer(text):
        if ssn_valid(match.group(1), match.group(2), match.group(3)) and has_cue(
            text, match.start(), _SSN_CUE, width=40
        ):
            yield PiiFinding(PiiType.SSN, match.start(), match.end(), match.group(), 0.8)
