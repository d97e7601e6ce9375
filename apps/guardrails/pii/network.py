"""IPv4 and IPv6 addresses, validated by the standard library's `ipaddress`."""

import ipaddress
import re
from collections.abc import Iterator

from ..findings import PiiFinding, PiiType
from .context import text_before

# Octet ranges and leading zeros are left to ipaddress; the regex only finds the shape.
_IPV4 = re.compile(r"[0-9](?<![\w.][0-9])[0-9]{0,2}(?:\.[0-9]{1,3}){3}(?![\w]|\.[0-9])")
# Hex groups and colons, optionally an IPv4 tail (::ffff:192.0.2.1) and a zone (%eth0). It is
# tried only where _IPV6_SEED finds "x:y:" so ordinary prose is skipped at the speed of a literal.
_IPV6 = re.compile(
    r"(?<![\w:.])"
    r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9A-Fa-f]{1,4})?"
    r"(?:%[\w.-]{1,32})?(?![\w:])"
)
_IPV6_SEED = re.compile(r":[0-9A-Fa-f]{0,4}:")
_HEX = frozenset("0123456789abcdefABCDEF")
# "version 1.2.3.4", "section 4.2.1.3": dotted numbers that are not addresses.
_NOT_ADDRESS_CUE = re.compile(
    r"(?i)\b(?:v|ver|version|release|build|firmware|sdk|section|chapter|clause|rule|step|oid|§)\W{0,3}$"
)


def find_ip_addresses(text: str) -> Iterator[PiiFinding]:
    for match in _IPV4.finditer(text):
        try:
            address = ipaddress.IPv4Address(match.group())
        except ValueError:
            continue
        confidence = _address_confidence(address)
        if _NOT_ADDRESS_CUE.search(text_before(text, match.start(), 16)):
            confidence = min(confidence, 0.3)
        yield PiiFinding(PiiType.IP, match.start(), match.end(), match.group(), confidence)
    for match in _ipv6_candidates(text):
        candidate = match.group()
        if sum(char.isalnum() for char in candidate.split("%")[0]) < 2:
            continue  # a bare "::" in code or prose
        try:
            address = ipaddress.IPv6Address(candidate)
        except ValueError:
            continue
        yield PiiFinding(PiiType.IP, match.start(), match.end(), candidate, _address_confidence(address))


def _ipv6_candidates(text: str) -> Iterator[re.Match[str]]:
    position = 0
    while seed := _IPV6_SEED.search(text, position):
        start = seed.start()
        while start > 0 and seed.start() - start < 4 and text[start - 1] in _HEX:
            start -= 1
        match = _IPV6.match(text, start)
        if match and match.end() > seed.start():
            yield match
            position = match.end()
        else:
            position = seed.start() + 1


def _address_confidence(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> float:
    """Loopback and unspecified addresses identify no one; private ones still identify a machine."""
    if address.is_loopback or address.is_unspecified or address.is_multicast:
        return 0.3
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        return _address_confidence(mapped)
    if address.is_private or address.is_link_local:
        return 0.8
    return 0.85
