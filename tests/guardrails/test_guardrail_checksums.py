import pytest

from apps.guardrails.checksums import IBAN_LENGTHS, card_issuer_known, iban_valid, luhn_valid, ssn_valid


@pytest.mark.parametrize(
    "number", ["4111111111111111", "378282246310005", "6011111111111117", "30569309025904"]
)
def test_luhn_accepts_valid_card_numbers(number):
    assert luhn_valid(number)


@pytest.mark.parametrize("number", ["4111111111111112", "1234567812345678", "", "4111-1111"])
def test_luhn_rejects_wrong_check_digit_and_non_digits(number):
    assert not luhn_valid(number)


@pytest.mark.parametrize(
    "iban",
    [
        "DE89370400440532013000",
        "GB82WEST12345698765432",
        "NO9386011117947",
        "MT84MALT011000012345MTLCAST001S",
    ],
)
def test_iban_accepts_valid_numbers(iban):
    assert iban_valid(iban)


@pytest.mark.parametrize(
    ("iban", "why"),
    [
        ("DE89370400440532013001", "checksum"),
        ("DE8937040044053201300", "length for DE"),
        ("XX89370400440532013000", "unknown country"),
        ("DEAB370400440532013000", "check digits not numeric"),
        ("DE89 3704", "too short"),
    ],
)
def test_iban_rejects_invalid_numbers(iban, why):
    assert not iban_valid(iban), why


def test_iban_length_table_covers_sepa_countries():
    for country in ("AT", "BE", "CH", "DE", "ES", "FI", "FR", "GB", "IE", "IT", "NL", "NO", "PL", "PT", "SE"):
        assert 15 <= IBAN_LENGTHS[country] <= 34


@pytest.mark.parametrize(
    ("area", "group", "serial"),
    [
        ("000", "12", "3456"),
        ("666", "12", "3456"),
        ("900", "12", "3456"),
        ("123", "00", "4567"),
        ("123", "45", "0000"),
    ],
)
def test_ssn_rejects_numbers_never_issued(area, group, serial):
    assert not ssn_valid(area, group, serial)


def test_ssn_accepts_an_issuable_number():
    assert ssn_valid("536", "22", "1407")


@pytest.mark.parametrize(
    "number", ["4111111111111111", "5555555555554444", "2223003122003222", "378282246310005"]
)
def test_card_issuer_ranges_are_recognised(number):
    assert card_issuer_known(number)


@pytest.mark.parametrize("number", ["1318609139099603", "9111111111111111", "411111111111111"])
def test_unknown_issuer_or_wrong_length_is_not_recognised(number):
    assert not card_issuer_known(number)
