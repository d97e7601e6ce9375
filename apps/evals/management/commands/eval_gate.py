"""`manage.py eval_gate --prompt NAME --version N`: run (or reuse) the gating runs of a prompt version and
exit 0 when the gate passes, 1 when it does not (2: usage errors). For CI; see docs/ci/eval-gate.github-actions.yml.

By default the runs execute in this process (no Celery worker needed); `--queue` sends them to the llm queue
and waits for the workers.
"""

from __future__ import annotations

import json
import time

from django.core.management.base import BaseCommand, CommandError

from apps.core.request_context import acting_as
from apps.evals import runner
from apps.evals.gates import gate_evaluate, gate_runs_ensure
from apps.evals.models import ACTIVE_STATUSES, EvalGate, EvalRun
from apps.prompts.models import Prompt, PromptVersion


class Command(BaseCommand):
    help = "Run (or reuse) a prompt version's gating runs; exit 0 if the eval gate passes, 1 if not."

    def create_parser(self, prog_name, subcommand, **kwargs):
        kwargs.setdefault("conflict_handler", "resolve")  # our --version is the prompt's, not Django's
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("--prompt", required=True, help="Prompt name, e.g. support/faq-answer")
        parser.add_argument("--version", required=True, type=int, help="Version number")
        parser.add_argument("--queue", action="store_true", help="Run on the Celery llm queue and wait")
        parser.add_argument("--timeout", type=float, default=3600, help="Seconds to wait with --queue")
        parser.add_argument("--threads", type=int, default=None, help="Threads for in-process runs")
        parser.add_argument("--json", action="store_true", help="Print the verdict as JSON")

    def handle(self, *args, **options):
        prompt = Prompt.objects.filter(name=options["prompt"]).first()
        if prompt is None:
            raise CommandError(f"There is no prompt named {options['prompt']!r}.", returncode=2)
        version = PromptVersion.objects.filter(prompt=prompt, number=options["version"]).first()
        if version is None:
            raise CommandError(f"{prompt.name} has no version {options['version']}.", returncode=2)
        gate = EvalGate.objects.filter(prompt=prompt).select_related("prompt").first()
        if gate is None:
            raise CommandError(f"{prompt.name} has no eval gate: set one on its Evals → Gates page.", returncode=2)
        with acting_as(None):
            runs = gate_runs_ensure(gate=gate, version=version, actor=None, enqueue=options["queue"])
            for run in runs:
                if run.status in ACTIVE_STATUSES:
                    if options["queue"]:
                        self._wait(run.pk, options["timeout"])
                    else:
                        self.stdout.write(f"running #{run.pk} ({run.progress_total} calls) in this process…")
                        runner.run_execute_inline(run.pk, threads=options["threads"])
                else:
                    self.stdout.write(f"reusing finished run #{run.pk}")
        verdict = gate_evaluate(gate, version)
        if options["json"]:
            self.stdout.write(json.dumps(verdict.as_dict(), default=str, indent=1))
        else:
            self.stdout.write(f"{prompt.name} v{version.number} ({version.content_hash[:10]}), gate v{gate.version}: "
                              f"{verdict.status.upper()}")
            self.stdout.write(verdict.summary())
            for d in verdict.datasets:
                if d.run is not None:
                    self.stdout.write(f"  run #{d.run.pk}: pass rate "
                                      f"{'—' if d.pass_rate is None else f'{100 * d.pass_rate:.1f}%'}"
                                      + (f", baseline run #{d.baseline.pk}" if d.baseline else ""))
        if not verdict.passed:
            raise SystemExit(1)

    def _wait(self, run_id: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            run = EvalRun.objects.get(pk=run_id)
            if run.status not in ACTIVE_STATUSES:
                return
            if time.monotonic() > deadline:
                raise CommandError(f"run #{run_id} did not finish within {timeout:.0f} s", returncode=1)
            self.stdout.write(f"#{run_id}: {run.progress_done}/{run.progress_total}")
            time.sleep(2)
