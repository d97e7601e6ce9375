"""One block per PII type: what it must find, and look-alikes it must leave alone."""

import pytest

from apps.guardrails import PiiType, detect_pii


def found(text: str, pii_type: PiiType, **options) -> list[str]:
    return [finding.text for finding in detect_pii(text, types=[pii_type], **options)]


# --- e-mail ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail maria.schneider@acme-logistics.de today", "maria.schneider@acme-logistics.de"),
        ("<j.doe+news@gmail.com>", "j.doe+news@gmail.com"),
        ("Reply to TOM@CONTOSO.COM.", "TOM@CONTOSO.COM"),
        ("write to josé.garcía@correo.es", "josé.garcía@correo.es"),
        ("it is sarah dot connor at gmail dot com", "sarah dot connor at gmail dot com"),
    ],
)
def test_email_addresses_are_found(text, expected):
    assert found(text, PiiType.EMAIL) == [expected]


@pytest.mark.parametrize(
    "text",
    [
        "logo@2x.png is the retina asset",
        "npm i lodash@4.17.21",
        "ping @maria on Slack",
        "git clone git@github.com:acme/portal.git",
        "use test@localhost locally",
        "3 items @ 4.99",
    ],
)
def test_email_look_alikes_are_ignored(text):
    assert found(text, PiiType.EMAIL) == []


def test_reserved_example_domains_are_below_the_default_threshold():
    assert found("jane@example.com", PiiType.EMAIL) == []
    assert found("jane@example.com", PiiType.EMAIL, min_confidence=0.3) == ["jane@example.com"]


# --- phone ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("reach me on +49 30 12345678 please", "+49 30 12345678"),
        ("Call +1 (415) 555-0132", "+1 (415) 555-0132"),
        ("phone: +44 (0)20 7946 0321", "+44 (0)20 7946 0321"),
        ("Phone (415) 555-2671 ext. 42", "(415) 555-2671"),
        ("my cell is 212-555-0187", "212-555-0187"),
        ("Numéro: 01 42 68 53 00", "01 42 68 53 00"),
        ("Tel.: 030 / 2345 6789", "030 / 2345 6789"),
        ("please call 0049 89 1234567", "0049 89 1234567"),
        ("Phone: 4155550132", "4155550132"),
        ("call 555-867-5309 2 times", "555-867-5309"),
        ("k.meyer@gmx.net,+49 40 3037 4421", "+49 40 3037 4421"),
    ],
)
def test_phone_numbers_are_found(text, expected):
    assert found(text, PiiType.PHONE) == [expected]


@pytest.mark.parametrize(
    "text",
    [
        "The meeting is on 2024-03-15 at 14:30.",
        "Invoice date 15.03.2024, due 14.04.2024.",
        "Deadline: 03/15/2024.",
        "Upgrade from v2.14.3 to 10.4.12",
        "Order #2024556677 shipped",
        "Customer ID 100457893211 requested a refund",
        "ISBN 978-3-16-148410-0",
        "Coordinates 52.520008, 13.404954",
        "Unix time 1700000000",
        "Total 1,234,567.89 EUR",
        "IBAN DE89 3704 0044 0532 0130 00",
        "Logged at 05.03.2019 14:22:10 by the system",
        "Logged at 03/05/2019 02:22 PM",
    ],
)
def test_dates_versions_and_ids_are_not_phone_numbers(text):
    assert found(text, PiiType.PHONE) == []


def test_phone_confidence_rises_with_a_phone_cue():
    (bare,) = detect_pii("617 555 0144", types=["PHONE"])
    (cued,) = detect_pii("phone 617 555 0144", types=["PHONE"])
    assert 0.6 <= bare.confidence < cued.confidence <= 0.85


def test_identifier_cue_pushes_a_national_number_below_the_threshold():
    assert found("The batch 000123-4567-89 failed", PiiType.PHONE) == []


# --- payment cards --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card 4111 1111 1111 1111, exp 12/27", "4111 1111 1111 1111"),
        ("Mastercard 5555-5555-5555-4444", "5555-5555-5555-4444"),
        ("amex 3782 822463 10005", "3782 822463 10005"),
        ("cc: 6011111111111117", "6011111111111117"),
        ("19 digits 4871 6168 2812 6464 460", "4871 6168 2812 6464 460"),
    ],
)
def test_luhn_valid_card_numbers_are_found(text, expected):
    assert found(text, PiiType.CARD) == [expected]


def test_a_grouped_card_number_scores_095():
    (card,) = detect_pii("4111 1111 1111 1111", types=["CARD"])
    assert card.confidence == 0.95


@pytest.mark.parametrize(
    "text",
    [
        "Card 4009 7737 9727 6112 was rejected",  # fails Luhn
        "5565178800215810 is not valid",  # fails Luhn
        "Order 1318609139099603 confirmed",  # passes Luhn, no issuer starts with 1
        "Timestamp 1700000000123 ms",
        "Balance 1234 5678 9012 3456.78 USD",
        "Transaction id 4532015112830366 settled",  # Luhn-valid Visa shape, labelled as an id
    ],
)
def test_invalid_or_implausible_card_numbers_are_ignored(text):
    assert found(text, PiiType.CARD) == []


# --- IBAN -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("to DE89 3704 0044 0532 0130 00 (Commerzbank)", "DE89 3704 0044 0532 0130 00"),
        ("IBAN: GB82WEST12345698765432", "GB82WEST12345698765432"),
        ("Refund to BE68 5390 0754 7034 EUR 120.00", "BE68 5390 0754 7034"),
        ("Swiss CH93 0076 2011 6238 5295 7", "CH93 0076 2011 6238 5295 7"),
        ("iban: fi21 1234 5600 0007 85", "fi21 1234 5600 0007 85"),
    ],
)
def test_valid_ibans_are_found_and_cut_at_the_country_length(text, expected):
    assert found(text, PiiType.IBAN) == [expected]


@pytest.mark.parametrize(
    "text",
    [
        "DE89 3704 0044 0532 0130 01",  # checksum
        "DE8937040044053201300",  # length
        "XX12 3456 7890 1234 5678",  # no such country
        "Part number AB12 CDEF 3456 GH78",
    ],
)
def test_invalid_ibans_are_ignored(text):
    assert found(text, PiiType.IBAN) == []


# --- SSN ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SSN: 536-22-1407", "536-22-1407"),
        ("Applicant 457-55-5462", "457-55-5462"),
        ("His social is 401 38 2291.", "401 38 2291"),
        ("ssn=123456789", "123456789"),
    ],
)
def test_social_security_numbers_are_found(text, expected):
    assert found(text, PiiType.SSN) == [expected]


@pytest.mark.parametrize(
    "text",
    [
        "SSN 000-12-3456",
        "666-45-1234",
        "ITIN 912-34-5678",
        "SSN 123-00-4567",
        "SSN 123-45-0000",
        "Ref 401 38 2291",
        "id 123456789",
        "Part 536-22-1407 shipped",
    ],
)
def test_invalid_or_uncued_ssns_are_ignored(text):
    assert found(text, PiiType.SSN) == []


# --- IP addresses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Login from 203.0.113.54 blocked", "203.0.113.54"),
        ("connect to 192.168.1.20:8080", "192.168.1.20"),
        ("client 2001:db8:85a3::8a2e:370:7334", "2001:db8:85a3::8a2e:370:7334"),
        ("[2a00:1450:4001:82b::200e]:443", "2a00:1450:4001:82b::200e"),
        ("zone fe80::1ff:fe23:4567:890a%eth0 seen", "fe80::1ff:fe23:4567:890a%eth0"),
        ("mapped ::ffff:192.0.2.128 here", "::ffff:192.0.2.128"),
    ],
)
def test_ip_addresses_are_found(text, expected):
    assert found(text, PiiType.IP) == [expected]


@pytest.mark.parametrize(
    "text",
    [
        "listens on 127.0.0.1 and ::1",
        "bind 0.0.0.0",
        "Version 1.2.3.4 of the SDK",
        "build 10.0.19045.3693",
        "999.10.10.10",
        "MAC 00:1A:2B:3C:4D:5E",
        "at 12:30:45",
        "std::vector<int>",
        "OID 1.3.6.1.4.1.311",
    ],
)
def test_non_addresses_and_loopback_are_ignored(text):
    assert found(text, PiiType.IP) == []


# --- secrets --------------------------------------------------------------------------------------

# Built by concatenation so secret scanners do not flag this file; none of these is a live key.
OPENAI = "sk-proj-" + "Q9vX2mT7kLp3sN8rB4wY6zH1cJ5dF0gAx7Tn2Lq"
ANTHROPIC = "sk-ant-" + "api03-Zr8Kq2Vx5Lm9Tn3Pw7Ys1Bh6Cj4Df0Ga-Ek2Nu8Mr3Qt6Lw9Xy1Ab4"
STRIPE = "sk_" + "live_" + "51HxTq2LkV8mZ3nR7pW4sY9bJ6cF0gAd"
SLACK = "xo" + "xb-2048-1024-4f1TbR7sQ2uV9wX3yZ5aB8cD"
GITHUB = "gh" + "p_R4nD0mT0k3nV4lu3F0rT3st1ngPurp0s3s"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM = (
    "-----BEGIN "
    + "RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgO\n-----END RSA PRIVATE KEY-----"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"export OPENAI_API_KEY={OPENAI}", OPENAI),
        (f"key={ANTHROPIC}", ANTHROPIC),
        ("aws_access_key_id = AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        (f"token {GITHUB}", GITHUB),
        (f"SLACK={SLACK}", SLACK),
        (f"stripe.api_key = '{STRIPE}'", STRIPE),
        ("maps AIzaSyD3kR8vQ1mZx7TnL2pW9sY4bH6cJ0dF5gA key", "AIzaSyD3kR8vQ1mZx7TnL2pW9sY4bH6cJ0dF5gA"),
        (f"Authorization: Bearer {JWT}", JWT),
        (f"deploy key:\n{PEM}\nkeep safe", PEM),
        ("token gp_3fa85f64_Xk9vR2mT7qLp3sN8rB4wY6zH1cJ5 leaked", "gp_3fa85f64_Xk9vR2mT7qLp3sN8rB4wY6zH1cJ5"),
        ("DATABASE_PASSWORD=Tr0ub4dor&3xplicit!", "Tr0ub4dor&3xplicit!"),
        ("postgres://app:Vq7xLm2pRt9s@db.internal:5432/portal", "Vq7xLm2pRt9s"),
    ],
)
def test_secrets_are_found_by_prefix_or_assignment(text, expected):
    assert found(text, PiiType.SECRET) == [expected]


@pytest.mark.parametrize(
    "text",
    [
        "We use scikit-learn (sk-learn) and sk-learn-intelex.",
        "Set OPENAI_API_KEY=sk-... before running.",
        "api_key: sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "GitHub tokens start with ghp_ and Slack bot tokens with xoxb-.",
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo\n-----END PUBLIC KEY-----",
        "password: see the team vault entry 'prod-db'",
        "password = get_password()",
        "Commit 3f2a9c1d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39",
    ],
)
def test_secret_look_alikes_and_placeholders_are_ignored(text):
    assert found(text, PiiType.SECRET) == []


def test_a_jwt_whose_header_does_not_decode_scores_lower():
    (fake,) = detect_pii("eyJub3Rqc29u.eyJzdWIiOiIx.c2lnbmF0dXJlMTIz", types=["SECRET"], min_confidence=0)
    assert fake.confidence < 0.95
