"""Runbooks: Markdown per incident type (the council's) and per use case (its team's), rendered through the one
sanitiser, linked from the incident and from the use case page."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.incidents import runbooks
from apps.incidents.models import Runbook
from apps.reviews.models import State, UseCase

HOSTILE = """# Provider outage

1. Check the [status page](https://status.example.com).
2. <script>alert(1)</script> then [click](javascript:alert(1))
<img src=x onerror=alert(1)>
"""


@pytest.fixture
def use_case(team):
    return UseCase.objects.create(team=team, title="Refund helper", state=State.ACTIVE, purpose="Refunds")


def test_the_council_writes_a_type_runbook_rendered_without_scripts(council_member):
    runbook = runbooks.runbook_save(actor=council_member, kind="provider_outage", title="Provider outage",
                                    body=HOSTILE)
    html = runbooks.runbook_html(runbook)
    assert "<h1>Provider outage</h1>" in html and 'href="https://status.example.com"' in html
    assert "<script" not in html and "<img" not in html and 'href="javascript' not in html  # raw HTML stays text
    assert "&lt;script&gt;" in html
    assert AuditEvent.objects.filter(action="incident.runbook_save").count() == 1
    again = runbooks.runbook_save(actor=council_member, kind="provider_outage", title="Provider outage v2",
                                  body="Updated.")
    assert again.pk == runbook.pk and Runbook.objects.count() == 1


@pytest.mark.parametrize("who, general, own", [("engineer", False, True), ("owner", False, True),
                                               ("viewer", False, False), ("outsider", False, False),
                                               ("council_member", True, True)])
def test_who_may_write_runbooks(use_case, who, general, own, request):
    actor = request.getfixturevalue(who)
    for use_case_or_none, allowed in ((None, general), (use_case, own)):
        if allowed:
            runbooks.runbook_save(actor=actor, kind="data_exposure", title="Data exposure", body="Steps",
                                  use_case=use_case_or_none)
        else:
            with pytest.raises(PermissionDenied):
                runbooks.runbook_save(actor=actor, kind="data_exposure", title="x", body="y",
                                      use_case=use_case_or_none)


def test_bad_runbook_input_is_refused(council_member):
    with pytest.raises(ValidationError) as caught:
        runbooks.runbook_save(actor=council_member, kind="meteor", title=" ", body="")
    assert set(caught.value.message_dict) == {"kind", "title", "body"}


def test_the_incident_links_its_use_cases_runbook_first_then_its_types(declare, use_case, engineer, council_member,
                                                                       client_for):
    general = runbooks.runbook_save(actor=council_member, kind="incorrect_outputs", title="Wrong answers",
                                    body="Steps")
    own = runbooks.runbook_save(actor=engineer, kind="incorrect_outputs", title="Refund helper: wrong answers",
                                body="Steps", use_case=use_case)
    runbooks.runbook_save(actor=council_member, kind="runaway_cost", title="Runaway cost", body="Steps")
    incident = declare(use_cases=[use_case.pk])
    assert runbooks.runbooks_for_incident(incident) == [own, general]
    page = client_for(engineer).get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    assert reverse("incidents:runbook", args=[own.pk]) in page and "Runaway cost" not in page
    use_case_page = client_for(engineer).get(reverse("reviews:detail", args=[use_case.pk])).content.decode()
    assert "Incidents and runbooks" in use_case_page and "Refund helper: wrong answers" in use_case_page
    assert incident.reference in use_case_page


def test_the_runbook_pages(council_member, engineer, client_for):
    client = client_for(council_member)
    bad = client.post(reverse("incidents:runbook_edit") + "?kind=unsafe_content",
                      {"kind": "unsafe_content", "title": "", "body": "x"})
    assert bad.status_code == 400 and not Runbook.objects.exists()
    saved = client.post(reverse("incidents:runbook_edit") + "?kind=unsafe_content",
                        {"kind": "unsafe_content", "title": "Unsafe content", "body": "## First\n\n- block"})
    runbook = Runbook.objects.get()
    assert saved.status_code == 302 and saved["Location"] == runbook.get_absolute_url()
    page = client_for(engineer).get(runbook.get_absolute_url())
    assert page.status_code == 200 and "<h2>First</h2>" in page.content.decode()
    assert client_for(engineer).get(reverse("incidents:runbook_edit") + "?kind=other").status_code == 403
