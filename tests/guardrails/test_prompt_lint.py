"""lint_template: each code, its severity, its line number and a message naming the variable."""

import pytest

from apps.guardrails import LintCode, Severity, lint_template
from apps.guardrails.lint import is_user_input_name


def codes(template: str, declared=None, used=None) -> list[tuple[str, int | None, str | None]]:
    findings = lint_template(template, declared_variables=declared, used_variables=used or set())
    return [(f.code.value, f.line, f.variable) for f in findings]


def test_a_clean_template_has_no_findings():
    template = "You answer questions about {{ product }}.\n<question>\n{{ question }}\n</question>\n"
    assert (
        lint_template(
            template, declared_variables={"product", "question"}, used_variables={"product", "question"}
        )
        == []
    )


def test_undeclared_variable_is_an_error_on_the_line_where_it_is_used():
    template = "Hello {{ name }}.\n\nReply in {{ language }}."
    (finding,) = lint_template(template, declared_variables={"name"}, used_variables={"name", "language"})
    assert finding.code == LintCode.UNDECLARED_VARIABLE and finding.severity == Severity.ERROR
    assert finding.line == 3 and finding.variable == "language" and "'language'" in finding.message


def test_a_variable_used_only_in_a_statement_gets_that_line():
    template = "Items:\n{% for item in items %}- {{ item }}\n{% endfor %}"
    found = codes(template, declared=set(), used={"items"})
    assert found == [("undeclared-variable", 2, "items")]


def test_unused_variable_is_a_warning_without_a_line():
    (finding,) = lint_template("Hi {{ name }}", declared_variables={"name", "tone"}, used_variables={"name"})
    assert finding.code == LintCode.UNUSED_VARIABLE and finding.severity == Severity.WARNING
    assert finding.line is None and "'tone'" in finding.message


def test_no_declaration_skips_the_declared_and_used_comparison():
    assert codes("Hi {{ name }}", declared=None, used={"name"}) == []


def test_pii_in_literal_text_is_reported_with_its_line_and_masked():
    template = "Escalate to ops@acme-corp.com.\nKey: AKIAIOSFODNN7EXAMPLE\n{{ name }} <x@y.com>"
    findings = lint_template(template, declared_variables=None, used_variables={"name"})
    assert [(f.code, f.line, f.severity) for f in findings] == [
        (LintCode.PII_IN_TEMPLATE, 1, Severity.WARNING),
        (LintCode.PII_IN_TEMPLATE, 2, Severity.ERROR),
        (LintCode.PII_IN_TEMPLATE, 3, Severity.WARNING),
    ]
    assert "AKIAIOSFODNN7EXAMPLE" not in findings[1].message and "secret" in findings[1].message


def test_pii_inside_template_tags_is_not_literal_text():
    template = "{{ contact or 'ops@acme-corp.com' }} {# call +49 30 12345678 #}"
    assert codes(template, used={"contact"}) == []


def test_example_domains_are_fine_in_few_shot_examples():
    assert codes("Example: write to jane@example.com about the order.") == []


@pytest.mark.parametrize(
    "template",
    [
        "Answer the question: {{ question }}",
        "Context:\n{{ context }}\nNow answer.",
        "### Document\n{{ document }}\n\nSummarise it.",
        "Bio: {{ user_bio }}",
        'Quote: "{{ email_text }}"',
    ],
)
def test_user_input_without_delimiters_is_a_warning_naming_the_variable(template):
    (finding,) = lint_template(template, declared_variables=None, used_variables=set())
    assert finding.code == LintCode.UNDELIMITED_USER_INPUT and finding.severity == Severity.WARNING
    assert finding.variable in finding.message and "<" in finding.message


@pytest.mark.parametrize(
    "template",
    [
        "<question>{{ question }}</question>",
        '<document id="1">\n  {{ document }}\n</document>',
        '"""\n{{ user_text }}\n"""',
        "```\n{{ message }}\n```",
        "```text\n{{ message }}\n```",
        "---\n{{ context }}\n---\nAnswer using only the context.",
        "### Question\n{{ query }}\n### Answer",
        "Answer below.\n---\n{{ input }}",
        "Data: {{ user_input | tojson }}",
        "Hello {{ customer_name }}",
    ],
)
def test_delimited_user_input_and_other_names_are_fine(template):
    assert codes(template) == []


def test_each_undelimited_occurrence_is_reported_on_its_own_line():
    template = "<q>{{ question }}</q>\nAgain: {{ question }}\nAnd: {{ question }}"
    assert codes(template) == [
        ("undelimited-user-input", 2, "question"),
        ("undelimited-user-input", 3, "question"),
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("input", True),
        ("question", True),
        ("questions", True),
        ("query", True),
        ("message", True),
        ("user_bio", True),
        ("email_text", True),
        ("document", True),
        ("documents", True),
        ("context", True),
        ("product", False),
        ("language", False),
        ("tone", False),
        ("username", False),
    ],
)
def test_user_input_names(name, expected):
    assert is_user_input_name(name) is expected


def test_findings_are_sorted_by_line():
    template = "Q: {{ question }}\nKey AKIAIOSFODNN7EXAMPLE\n{{ extra }}"
    lines = [
        f.line
        for f in lint_template(
            template, declared_variables={"question"}, used_variables={"question", "extra"}
        )
    ]
    assert lines == sorted(lines)
