"""Token estimates without tiktoken: close to cl100k on known samples, never zero for text, framing counted."""

import pytest

from apps.llm.tokens import IMAGE_TOKENS, estimate_messages_tokens, estimate_tokens


@pytest.mark.parametrize("text, cl100k", [
    ("Hello world", 2),
    ("Hello, world!", 4),
    ("The quick brown fox jumps over the lazy dog.", 10),
    ("1234567890", 4),
    ("antidisestablishmentarianism", 6),
])
def test_short_samples_match_cl100k(text, cl100k):
    assert estimate_tokens(text) == cl100k


def test_english_prose_lands_near_the_published_ratio():
    prose = ("Every view and API endpoint checks permissions; a tenant filter is applied in SQL, not after. "
             "Long work such as evals, indexing, imports and rollups runs in Celery, is idempotent and resumable, "
             "and shows progress on the page. ") * 10
    words = len(prose.split())
    assert 1.1 * words <= estimate_tokens(prose) <= 1.6 * words


def test_empty_text_is_zero_and_any_text_is_at_least_one():
    assert estimate_tokens("") == 0
    assert estimate_tokens("a") == 1
    assert estimate_tokens("你好") >= 2


def test_messages_add_framing_names_tool_calls_and_images():
    plain = [{"role": "user", "content": "Hello world"}]
    assert estimate_messages_tokens(plain) == 3 + 3 + 2  # reply priming + per-message framing + content

    named = [{"role": "user", "content": "Hello world", "name": "bob"}]
    assert estimate_messages_tokens(named) == estimate_messages_tokens(plain) + 2

    with_image = [{"role": "user", "content": [{"type": "text", "text": "Hello world"},
                                               {"type": "image_url", "image_url": {"url": "data:..."}}]}]
    assert estimate_messages_tokens(with_image) == estimate_messages_tokens(plain) + IMAGE_TOKENS

    tools = [{"type": "function", "function": {"name": "lookup_order", "parameters": {"type": "object"}}}]
    assert estimate_messages_tokens(plain, tools) > estimate_messages_tokens(plain)
