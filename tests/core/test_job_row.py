"""`JobRow` (ADR 0094): the job models of evals, rag and costs share one progress shape and one `percent`."""

import pytest

from apps.core.models import JobRow
from apps.costs.models import JobStatus as RepricingStatus
from apps.costs.models import RepricingJob
from apps.evals.models import EvalRun, RunStatus
from apps.rag.models import IndexingJob, JobStatus, RetrievalEvalRun

JOB_MODELS = [EvalRun, IndexingJob, RetrievalEvalRun, RepricingJob]


@pytest.mark.parametrize("model", JOB_MODELS, ids=lambda m: m.__name__)
@pytest.mark.parametrize(("done", "total", "percent"), [
    (0, 0, 0),        # nothing to do yet: no division, an empty bar
    (5, 0, 0),        # a total not counted yet
    (0, 3, 0),
    (1, 3, 33),
    (2, 3, 66),       # rounded down, not to the nearest
    (199, 200, 99),   # one unit left: the bar is not full
    (3, 3, 100),
    (4, 3, 100),      # a counter that overshoots its total stays at 100
])
def test_percent_is_whole_units_done_rounded_down_and_capped(model, done, total, percent):
    assert model(progress_done=done, progress_total=total).percent == percent


@pytest.mark.parametrize("model", JOB_MODELS, ids=lambda m: m.__name__)
def test_every_job_model_takes_percent_and_is_active_from_the_one_base(model):
    assert issubclass(model, JobRow)
    assert "percent" not in vars(model) and "is_active" not in vars(model)


@pytest.mark.parametrize(("model", "active", "ended"), [
    (EvalRun, [RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.FINALIZING],
     [RunStatus.FINISHED, RunStatus.FAILED, RunStatus.CANCELLED]),
    (IndexingJob, [JobStatus.QUEUED, JobStatus.RUNNING], [JobStatus.SUCCEEDED, JobStatus.FAILED]),
    (RetrievalEvalRun, [JobStatus.QUEUED, JobStatus.RUNNING], [JobStatus.SUCCEEDED, JobStatus.FAILED]),
    (RepricingJob, [RepricingStatus.QUEUED, RepricingStatus.RUNNING], [RepricingStatus.DONE, RepricingStatus.FAILED]),
], ids=lambda v: v.__name__ if isinstance(v, type) else "")
def test_a_job_is_active_until_its_status_says_it_ended(model, active, ended):
    assert all(model(status=s).is_active for s in active)
    assert not any(model(status=s).is_active for s in ended)
    assert set(active) | set(ended) == {value for value, _ in model._meta.get_field("status").choices}


@pytest.mark.parametrize("model", JOB_MODELS, ids=lambda m: m.__name__)
def test_a_new_job_starts_queued_with_nothing_done(model):
    job = model()
    assert (job.status, job.progress_done, job.progress_total, job.error) == ("queued", 0, 0, "")
    assert job.started_at is None and job.finished_at is None and job.created_at is not None
