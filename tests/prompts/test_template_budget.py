"""A template cannot make a render allocate much more than the output cap: string-growing filters, str methods
and operators are charged while rendering (before they run when a parameter decides their size), so
`{{ 'a'|center(10**8) }}` is refused before it builds 100 MB (issue #12)."""

import tracemalloc

import pytest

from apps.prompts.templating import MAX_OUTPUT_CHARS, MAX_RENDER_CHARS, Part, RenderFailed, render_parts

BIG = "{% set a = 'a' * 200000 %}"
ATTACKS = [
    "{{ 'a'|center(10**8) }}",
    "{{ 'a'|indent(10**8, true) }}",
    "{{ 'a'.ljust(10**8) }}",
    "{{ '{:>100000000}'.format(1) }}",
    "{{ '%100000000s' % 'a' }}",
    "{{ ('a' * 200000)|replace('a', 'aaaaaaaaaa') }}",
    BIG + "{{ ([a] * 1000)|join }}",
    BIG + "{{ [a] * 1000 }}",
    BIG + "{% for i in range(100000) %}{{ a }}{% endfor %}",
    BIG + "{% set x %}{% for i in range(100000) %}{{ a|upper }}{% endfor %}{% endset %}{{ x|length }}",
    "{% set ns = namespace(s='a' * 100000) %}{% for i in range(30) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "{% set ns = namespace(s='a' * 100000) %}{% for i in range(30) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "{% set ns = namespace(x=10**50) %}{% for i in range(30) %}{% set ns.x = ns.x * ns.x %}{% endfor %}",
    "{{ ((10**100)**100)**100 }}",
    "{{ lipsum(100000, max=1000) }}",
    "{% set big = [0] * 200000 %}{{ ([big] * 200000)|sum(start=[])|length }}",
    "{{ [1]|batch(10**9, 'x')|list|length }}",
    "{{ 'aaaa'.translate({97: 'x' * 200000}) }}",
    BIG + "{{ a|tojson(indent=100000) }}",
]


@pytest.mark.parametrize("template", ATTACKS)
def test_a_growing_template_is_refused_by_the_sandbox_within_a_small_multiple_of_the_cap(template):
    tracemalloc.start()
    try:
        with pytest.raises(RenderFailed) as exc:
            render_parts([Part(template, "attack v1")], {}, {}, "attack v1")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert exc.value.problems[0].kind == "sandbox", exc.value.problems[0].message
    assert peak < 4 * MAX_RENDER_CHARS  # bytes: at most 4 per character, 10 × the 200,000-character cap


def test_ordinary_templates_render_as_before():
    template = ("Hello {{ name ~ '!' }} {{ items|join(', ') }} {{ 'x'|center(7) }} {{ '%05d' % 42 }} "
                "{{ '{:>4}'.format('ok') }} {{ ('ab' * 3)|replace('b', 'c') }}\n{{ text|indent(2) }}")

    (out,) = render_parts([Part(template, "ok v1")], {"name": "Ann", "items": ["a", "b"], "text": "l1\nl2"}, {},
                          "ok v1")

    assert out == "Hello Ann! a, b    x    00042   ok acacac\nl1\n  l2"


def test_the_budget_is_per_render_so_a_large_legitimate_output_renders_every_time():
    template = "{% for i in range(1000) %}{{ row ~ i }}\n{% endfor %}"
    variables = {"row": "x" * (MAX_OUTPUT_CHARS // 1000 - 10)}

    for _ in range(3):
        (out,) = render_parts([Part(template, "big v1")], variables, {}, "big v1")
        assert len(out) < MAX_OUTPUT_CHARS
