"""API keys, tokens and private keys, recognised by the prefixes their issuers give them."""

import base64
import binascii
import json
import re
from collections.abc import Iterator
from typing import NamedTuple

from ..findings import PiiFinding, PiiType


class _SecretPattern(NamedTuple):
    name: str
    gates: tuple[str, ...]  # lower-case strings one of which the text must hold: a cheap test first
    pattern: re.Pattern[str]
    confidence: float
    needs_digit: bool = False  # random keys almost always hold a digit; placeholders rarely do


# Each pattern starts with its literal prefix and checks what precedes it afterwards, which lets
# the regex engine jump from one occurrence of the prefix to the next.
_SECRET_PATTERNS = (
    _SecretPattern(
        "PEM private key",
        ("-----begin",),
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
            r"(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s]*)"
        ),
        0.99,
    ),
    _SecretPattern(
        "Anthropic key", ("sk-ant-",), re.compile(r"sk-ant-(?<![\w-]sk-ant-)[A-Za-z0-9_-]{20,}"), 0.97, True
    ),
    _SecretPattern(
        "OpenAI key",
        ("sk-",),
        re.compile(r"sk-(?<![\w-]sk-)(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"),
        0.95,
        True,
    ),
    _SecretPattern(
        "AWS access key id",
        ("akia", "asia", "abia", "acca"),
        re.compile(r"(?:AKIA|ASIA|ABIA|ACCA)(?<!\w....)[A-Z0-9]{16}\b"),
        0.95,
    ),
    _SecretPattern(
        "AWS secret access key",
        ("secret_access_key", "secretaccesskey"),
        re.compile(
            r"(?i)aws_?secret_?access_?key[\"']?\s*[:=]\s*[\"']?(?P<value>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
        ),
        0.9,
    ),
    _SecretPattern(
        "GitHub token",
        ("ghp_", "gho_", "ghs_", "ghu_", "ghr_"),
        re.compile(r"gh[pousr]_(?<!\w....)[A-Za-z0-9]{30,255}\b"),
        0.95,
        True,
    ),
    _SecretPattern(
        "GitHub fine-grained token",
        ("github_pat_",),
        re.compile(r"github_pat_[A-Za-z0-9_]{22,255}\b"),
        0.95,
        True,
    ),
    _SecretPattern(
        "Slack token", ("xox",), re.compile(r"xox[baprse]-(?<!\w.....)[A-Za-z0-9-]{10,}"), 0.95, True
    ),
    _SecretPattern(
        "Stripe live key",
        ("k_live_",),
        re.compile(r"[sr]k_live_(?<!\w........)[A-Za-z0-9]{16,}\b"),
        0.95,
        True,
    ),
    _SecretPattern(
        "Stripe test key",
        ("k_test_",),
        re.compile(r"[sr]k_test_(?<!\w........)[A-Za-z0-9]{16,}\b"),
        0.8,
        True,
    ),
    _SecretPattern(
        "Google API key", ("aiza",), re.compile(r"AIza(?<!\w....)[0-9A-Za-z_-]{35}(?![\w-])"), 0.95
    ),
    _SecretPattern(
        "portal API token", ("gp_",), re.compile(r"gp_(?<!\w...)[0-9A-Za-z]{8}_[A-Za-z0-9_-]{20,}"), 0.97
    ),
)

_JWT = re.compile(r"eyJ(?<![\w-]eyJ)[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{8,}")
# `password = ...`, `"client_secret": "..."`: a value assigned to a name that says it is secret.
_SECRET_NAMES = (
    r"(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?key|auth[_-]?token|access[_-]?token|private[_-]?key|"
    r"client[_-]?secret|account[_-]?key|shared[_-]?access[_-]?key)"
)
_SECRET_NAME = re.compile(_SECRET_NAMES)
_ASSIGNED_SECRET = re.compile(
    rf"(?i){_SECRET_NAMES}[\w-]{{0,30}}[\"']?\s*[:=]\s*[\"']?(?P<value>[^\s\"'<>`,;]{{8,200}})"
)
# scheme://user:password@host: the password part of a connection URL.
_URL_PASSWORD = re.compile(r"(?i)\b[a-z][a-z0-9+.-]{1,20}://[^\s:/@]{1,64}:(?P<value>[^\s:/@]{3,128})@[\w.-]")
_PLACEHOLDER = re.compile(r"(?i)xxxx|\*\*\*|\.\.\.|your[_-]|changeme|placeholder|redacted|<|\$\{|\{\{|^\$")


def find_secrets(text: str) -> Iterator[PiiFinding]:
    lowered = text.lower()
    for secret in _SECRET_PATTERNS:
        if not any(gate in lowered for gate in secret.gates):
            continue
        group = "value" if "value" in secret.pattern.groupindex else 0
        for match in secret.pattern.finditer(text):
            value = match.group(group)
            if secret.needs_digit and not _looks_random(value):
                continue
            yield PiiFinding(PiiType.SECRET, match.start(group), match.end(group), value, secret.confidence)
    if "eyj" in lowered:
        for match in _JWT.finditer(text):
            confidence = 0.95 if _jwt_header_decodes(match.group()) else 0.7
            yield PiiFinding(PiiType.SECRET, match.start(), match.end(), match.group(), confidence)
    yield from _assigned_secrets(text, lowered)
    if "://" in text:
        for match in _URL_PASSWORD.finditer(text):
            value = match.group("value")
            if not _PLACEHOLDER.search(value):
                yield PiiFinding(PiiType.SECRET, match.start("value"), match.end("value"), value, 0.85)


def _assigned_secrets(text: str, lowered: str) -> Iterator[PiiFinding]:
    # Find the names in the lower-cased copy (a case-sensitive scan is much faster), then match the
    # assignment at that spot in the text; when lower-casing changed the length, scan the text.
    if not any(word in lowered for word in ("pass", "pwd", "secret", "key", "token")):
        return
    if len(lowered) == len(text):
        starts = (hit.start() for hit in _SECRET_NAME.finditer(lowered))
        matches = (match for start in starts if (match := _ASSIGNED_SECRET.match(text, start)))
    else:
        matches = _ASSIGNED_SECRET.finditer(text)
    end = 0
    for match in matches:
        value = match.group("value")
        if match.start() < end or not _looks_random(value) or "(" in value or _PLACEHOLDER.search(value):
            continue
        end = match.end()
        yield PiiFinding(PiiType.SECRET, match.start("value"), match.end("value"), value, 0.7)


def _looks_random(value: str) -> bool:
    """At least one digit, one letter and some variety: real keys, not `sk-xxxxxxxx` placeholders."""
    return (
        any(char.isdigit() for char in value)
        and any(char.isalpha() for char in value)
        and len(set(value)) >= 8
        and "xxxx" not in value.lower()
    )


def _jwt_header_decodes(token: str) -> bool:
    header = token.split(".", 1)[0]
    try:
        decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False
    return isinstance(decoded, dict) and "alg" in decoded
