"""The price catalog: LiteLLM import, corrections that re-price the past, and unpriced events becoming priced."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.costs.models import BudgetPeriod, Price, RepricingJob, UsageEvent, UsageRollup
from apps.costs.pricing_import import prices_import_litellm
from apps.costs.repricing import repricing_job_run
from apps.costs.services import budget_create, price_add, price_correct
from tests.costs.conftest import record

pytestmark = pytest.mark.django_db

LITELLM = json.loads((Path(__file__).parent / "data" / "litellm_sample.json").read_text())


def test_litellm_prices_are_imported_per_million_with_cached_input_and_providers(admin_user):
    report = prices_import_litellm(LITELLM, user=admin_user, valid_from=datetime(2025, 1, 1, tzinfo=UTC))

    assert sorted(report.created) == ["azure/gpt-4o-mini", "gpt-4o", "o3-mini", "text-embedding-3-small"]
    assert {k for k, _ in report.skipped} == {"dall-e-3", "whisper-1"}
    gpt4o = Price.objects.get(model_name="gpt-4o")
    assert (gpt4o.input_per_mtok, gpt4o.output_per_mtok, gpt4o.cached_input_per_mtok) == (
        Decimal("2.5"), Decimal("10"), Decimal("1.25"))
    azure = Price.objects.get(model_name="gpt-4o-mini")
    assert (azure.provider, azure.input_per_mtok) == ("azure", Decimal("0.165"))
    assert AuditEvent.objects.filter(action="price.set").count() == 4
    assert AuditEvent.objects.get(action="price.import").changes["created"] == 4

    again = prices_import_litellm(LITELLM, user=admin_user, valid_from=datetime(2025, 6, 1, tzinfo=UTC))
    assert again.created == [] and len(again.unchanged) == 4


def test_a_bad_entry_stops_the_import_and_names_the_model(admin_user):
    data = {**LITELLM, "broken": {"input_cost_per_token": "cheap", "mode": "chat"}}

    report = prices_import_litellm(data, user=admin_user)

    assert report.errors == [("broken", "input_cost_per_token 'cheap' is not a number")]
    assert not Price.objects.exists()
    assert prices_import_litellm(data, user=admin_user, skip_bad=True).created


def test_a_price_correction_re_prices_events_rollups_and_budgets(prices, team, owner, admin_user):
    at = timezone.now() - timedelta(days=2)
    record(*[{"team_id": team.pk, "model": "gpt-4o", "input_tokens": 1_000_000, "output_tokens": 0,
              "occurred_at": at, "request_id": f"r-{i}"} for i in range(3)])
    budget = budget_create(actor=owner, name="Support", team=team, amount="100")
    assert BudgetPeriod.objects.get(budget=budget).spent == Decimal("7.5")

    _, job = price_correct(price=prices["gpt-4o"], input_per_mtok="5", output_per_mtok="20",
                           reason="the provider doubled it in January", user=admin_user)
    repricing_job_run(job.pk)

    job.refresh_from_db()
    assert (job.status, job.events_repriced) == ("done", 3)
    assert set(UsageEvent.objects.values_list("cost", flat=True)) == {Decimal("5")}
    assert UsageRollup.objects.get(granularity="day").cost == Decimal("15")
    assert BudgetPeriod.objects.get(budget=budget).spent == Decimal("15")
    correction = AuditEvent.objects.get(action="price.correct")
    assert correction.changes["before"]["input_per_mtok"] == "2.500000"
    assert AuditEvent.objects.filter(action="price.reprice.done").exists()


def test_a_price_added_with_an_earlier_start_prices_the_unpriced_events(prices, team, admin_user):
    at = timezone.now() - timedelta(days=3)
    record({"team_id": team.pk, "model": "my-finetune", "input_tokens": 2_000_000, "output_tokens": 0,
            "occurred_at": at, "request_id": "ft-1"})
    assert UsageRollup.objects.get(granularity="day").unpriced == 1

    price, job = price_add(model_name="my-finetune", input_per_mtok="3", output_per_mtok="6",
                           valid_from=at - timedelta(days=1), user=admin_user)
    repricing_job_run(job.pk)

    event = UsageEvent.objects.get()
    assert (event.cost, event.price) == (Decimal("6"), price)
    day = UsageRollup.objects.get(granularity="day")
    assert (day.unpriced, day.cost) == (0, Decimal("6"))


def test_a_job_resumes_where_it_stopped(prices, team, admin_user):
    from apps.costs.repricing import repricing_job_request

    for d in range(3):
        record({"team_id": team.pk, "model": "gpt-4o", "input_tokens": 1_000_000, "output_tokens": 0,
                "occurred_at": timezone.now() - timedelta(days=d + 1), "request_id": f"d-{d}"})
    job = repricing_job_request(model_name="gpt-4o", start=timezone.now() - timedelta(days=4),
                                end=timezone.now(), user=admin_user)
    RepricingJob.objects.filter(pk=job.pk).update(status="running", progress_done=2)  # a worker died after 2 days

    repricing_job_run(job.pk)

    job.refresh_from_db()
    assert (job.status, job.progress_done) == ("done", job.progress_total)


def test_prices_page_is_read_by_all_and_changed_by_admins(client_for, admin_user, engineer, prices):
    assert client_for(engineer).get("/costs/prices/").status_code == 200
    assert client_for(engineer).post("/costs/prices/", {"model_name": "x", "input_per_mtok": "1",
                                                        "output_per_mtok": "1"}).status_code == 403

    bad = client_for(admin_user).post("/costs/prices/", {"model_name": "x", "input_per_mtok": "-1",
                                                         "output_per_mtok": "1"})
    assert bad.status_code == 400 and "greater than or equal to 0" in bad.content.decode()
    ok = client_for(admin_user).post("/costs/prices/", {"model_name": "new-model", "input_per_mtok": "1",
                                                        "output_per_mtok": "2"})
    assert ok.status_code == 302 and Price.objects.filter(model_name="new-model").exists()


def test_the_litellm_upload_reports_errors_next_to_the_form(client_for, admin_user):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("prices.json", b"{not json", content_type="application/json")
    response = client_for(admin_user).post("/costs/prices/import/", {"file": upload})

    assert response.status_code == 400 and "This is not a JSON file" in response.content.decode()
    good = SimpleUploadedFile("prices.json", json.dumps(LITELLM).encode(), content_type="application/json")
    assert client_for(admin_user).post("/costs/prices/import/", {"file": good}).status_code == 302
    assert Price.objects.count() == 4
