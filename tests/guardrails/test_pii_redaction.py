"""redact() and the shared behaviour of detect_pii: placeholders, overlaps, filters, offsets."""

from hypothesis import given, settings
from hypothesis import strategies as st

from apps.guardrails import PiiFinding, PiiType, RedactionResult, detect_pii, redact


def test_each_type_is_replaced_by_its_readable_placeholder():
    text = (
        "Mail laura.becker@posteo.de or call +49 151 23456789. Card 5105 1051 0510 5100, "
        "IBAN NL91 ABNA 0417 1643 00, SSN 523-84-1937, from 198.51.100.77, key AKIAIOSFODNN7EXAMPLE."
    )
    result = redact(text)
    assert result.text == (
        "Mail [EMAIL] or call [PHONE]. Card [CARD], IBAN [IBAN], SSN [SSN], from [IP], key [SECRET]."
    )
    assert [finding.type for finding in result.findings] == list(PiiType)


def test_findings_keep_offsets_into_the_original_text():
    text = "a j.doe@gmail.com b 10.0.0.7 c"
    result = redact(text)
    assert isinstance(result, RedactionResult)
    for finding in result.findings:
        assert text[finding.start : finding.end] == finding.text


def test_text_without_pii_is_returned_unchanged():
    text = "Release 3.2.0 (2024-05-02) closes #4512."
    assert redact(text) == RedactionResult(text=text, findings=[])


def test_types_limits_what_is_redacted_and_accepts_names():
    text = "j.doe@gmail.com 10.0.0.7"
    assert redact(text, types=["IP"]).text == "j.doe@gmail.com [IP]"
    assert redact(text, types=[PiiType.EMAIL]).text == "[EMAIL] 10.0.0.7"


def test_min_confidence_drops_weaker_findings():
    text = "call 617 555 0144 or write to jane@gmail.com"
    assert [f.type for f in detect_pii(text, min_confidence=0.9)] == [PiiType.EMAIL]


def test_overlapping_findings_keep_the_more_confident_one():
    # The card number is also a run of digits the SSN/phone detectors look at; one finding remains.
    text = "paid with 4012888888881881 yesterday"
    (finding,) = detect_pii(text)
    assert finding.type == PiiType.CARD


def test_a_private_key_block_is_one_finding_even_with_emails_inside():
    key = "-----BEGIN " + "PRIVATE KEY-----\nMIIEvQ admin@corp.com AbC123\n-----END PRIVATE KEY-----"
    result = redact(f"key:\n{key}\nend")
    assert result.text == "key:\n[SECRET]\nend"


def test_findings_are_frozen():
    (finding,) = detect_pii("j.doe@gmail.com")
    assert isinstance(finding, PiiFinding)
    try:
        finding.start = 3  # type: ignore[misc]
    except AttributeError:
        return
    raise AssertionError("PiiFinding should be immutable")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_any_text_gives_ordered_non_overlapping_findings(text):
    findings = detect_pii(text, min_confidence=0)
    for finding in findings:
        assert text[finding.start : finding.end] == finding.text
        assert 0.0 <= finding.confidence <= 1.0
    for earlier, later in zip(findings, findings[1:], strict=False):
        assert earlier.end <= later.start


pii_fragments = st.sampled_from(
    [
        "j.doe@gmail.com",
        "+49 30 12345678",
        "(415) 555-2671",
        "0171 2345678",
        "4111 1111 1111 1111",
        "DE89370400440532013000",
        "DE89 3704 0044 0532 0130 00",
        "536-22-1407",
        "203.0.113.9",
        "2001:db8::1",
        "AKIAIOSFODNN7EXAMPLE",
        "hello",
        "order 42",
        "2024-03-15",
        "phone",
        "card",
    ]
)
# Not a bare space: "4111 1111 1111 1111 0171 2345678" is ambiguous even to a reader (see the docs).
separators = st.sampled_from([", ", "\n", "; ", " | ", "\t"])


@settings(max_examples=300, deadline=None)
@given(st.lists(pii_fragments, max_size=12), separators)
def test_every_occurrence_is_redacted_when_values_sit_side_by_side(parts, separator):
    text = separator.join(parts)
    result = redact(text)
    for finding in result.findings:
        assert finding.text not in result.text
