"""The experiment pages and API: who sees what, who may act, bad input shown on the form with nothing written."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.experiments import services
from apps.experiments.models import Experiment, Status
from tests.experiments.conftest import unit_calls


@pytest.fixture
def running(experiment, engineer):
    return services.experiment_start(experiment=experiment, actor=engineer)


def test_the_page_states_the_test_up_front_and_compares_the_arms(client_for, engineer, running):
    page = client_for(engineer).get(running.get_absolute_url())
    html = page.content.decode()
    assert page.status_code == 200
    assert "mixture sequential probability ratio test" in html and 'data-testid="arms-comparison"' in html
    assert "Not enough data yet" in html and ">Kill (all traffic to control)<" in html
    assert "Promote through a request" in html


def test_the_page_names_the_unit_of_analysis_and_shows_a_sample_ratio_mismatch_until_acknowledged(
        client_for, engineer, viewer, running):
    unit_calls(running, "control", {f"c{n}": (2, 1) for n in range(50)})
    unit_calls(running, "candidate", {f"t{n}": (1, 1) for n in range(15)})
    services.experiments_srm_check()
    html = client_for(viewer).get(running.get_absolute_url()).content.decode()
    assert 'data-testid="analysis-unit"' in html and "the end user, the unit the split is sticky on" in html
    assert 'data-testid="srm-banner"' in html and "untrustworthy" in html and "Acknowledge" not in html
    client = client_for(engineer)
    assert ">Acknowledge</button>" in client.get(running.get_absolute_url()).content.decode()
    url = reverse("experiments:action", args=[running.pk, "acknowledge-srm"])
    refused = client.post(url, {"reason": ""}, follow=True).content.decode()
    assert "Say what caused the mismatch" in refused and 'data-testid="srm-banner"' in refused
    done = client.post(url, {"reason": "A crawler without a user id."}, follow=True).content.decode()
    assert 'data-testid="srm-banner"' not in done and "A crawler without a user id." in done


def test_a_viewer_reads_it_without_buttons_and_may_not_act(client_for, viewer, running):
    client = client_for(viewer)
    html = client.get(running.get_absolute_url()).content.decode()
    assert 'data-testid="arms-comparison"' in html and "Kill (all" not in html and "Promote through" not in html
    answer = client.post(reverse("experiments:action", args=[running.pk, "kill"]), {"reason": "mine now"})
    assert answer.status_code == 403
    assert Experiment.objects.get(pk=running.pk).status == Status.RUNNING


@pytest.mark.parametrize("who", ["outsider", "nobody"])
def test_people_outside_the_team_do_not_see_it(client_for, running, who, request):
    client = client_for(request.getfixturevalue(who))
    assert client.get(running.get_absolute_url()).status_code == 404
    assert running.name not in client.get(reverse("experiments:list")).content.decode()
    assert client_for(None).get(reverse("experiments:list")).status_code == 302  # anonymous: to the login


def test_kill_from_the_page_goes_back_to_the_page_with_the_state(client_for, engineer, running):
    answer = client_for(engineer).post(reverse("experiments:action", args=[running.pk, "kill"]),
                                       {"reason": "Agents report wrong summaries."}, follow=True)
    assert answer.status_code == 200 and "every request is back on the control" in answer.content.decode()
    assert Experiment.objects.get(pk=running.pk).status == Status.KILLED
    refused = client_for(engineer).post(reverse("experiments:action", args=[running.pk, "pause"]), follow=True)
    assert "Only a running experiment pauses" in refused.content.decode()


def test_creating_from_the_form_and_bad_weights_shown_on_the_form(client_for, engineer, prompt):
    form = {"prompt": prompt.name, "name": "Bullets", "unit": "user", "control_label": "production", "mde": "0.05",
            "alpha": "0.05", "min_outcomes": "100", "arm0_key": "control", "arm0_weight": "90",
            "arm0_label": "production", "arm1_key": "candidate", "arm1_weight": "20", "arm1_label": "staging"}
    client = client_for(engineer)
    bad = client.post(reverse("experiments:new"), form)
    assert bad.status_code == 400 and "add up to 110 %" in bad.content.decode()
    assert not Experiment.objects.exists()
    created = client.post(reverse("experiments:new"), {**form, "arm1_weight": "10"})
    experiment = Experiment.objects.get()
    assert created.status_code == 302 and created["Location"] == experiment.get_absolute_url()
    assert [(a.key, a.weight) for a in experiment.arms.all()] == [("control", 90), ("candidate", 10)]


def test_the_api_reads_the_comparison_and_kills_with_a_write_token(client, engineer, viewer, team, running,
                                                                   token_for):
    _token, read = token_for(viewer, team)
    got = client.get(f"/api/v1/experiments/{running.pk}", HTTP_AUTHORIZATION=f"Bearer {read}")
    assert got.status_code == 200 and [a["key"] for a in got.json()["comparison"]["arms"]] == ["control", "candidate"]
    url = f"/api/v1/experiments/{running.pk}/kill"
    refused = client.post(url, {"reason": "x"}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {read}")
    assert refused.status_code == 403
    _token, write = token_for(engineer, team, scope="write")
    no_reason = client.post(url, {}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {write}")
    assert no_reason.status_code == 422 and Experiment.objects.get(pk=running.pk).status == Status.RUNNING
    killed = client.post(url, {"reason": "Wrong answers."}, content_type="application/json",
                         HTTP_AUTHORIZATION=f"Bearer {write}")
    assert killed.status_code == 200 and killed.json()["status"] == "killed"


def test_the_prompt_page_lists_its_experiments_and_offers_a_new_one_to_engineers(client_for, engineer, viewer,
                                                                                   running, prompt):
    url = reverse("prompts:detail", args=[prompt.name])
    html = client_for(engineer).get(url).content.decode()
    assert "Online experiments" in html and running.get_absolute_url() in html
    assert f"{reverse('experiments:new')}?prompt=support/triage-summary" in html
    seen = client_for(viewer).get(url).content.decode()
    assert running.get_absolute_url() in seen and reverse("experiments:new") not in seen
