"""The evaluator registry loads once, and threads that ask while it loads wait for it (issue #4 kill-test flake:
a worker's threads scored their first items at the same moment and one found no evaluator kind)."""

from __future__ import annotations

import threading
import time

from apps.evals import evaluators
from apps.evals.evaluators import Score, custom, registry


def test_threads_asking_while_the_registry_loads_all_find_the_kind(monkeypatch):
    def slow_load():  # stands in for the imports of the evaluator families, which take a while in a fresh worker
        time.sleep(0.3)
        evaluators.register_evaluator("late_kind", "Late kind", lambda case, params: Score(1.0))

    monkeypatch.setattr(custom, "load_custom_evaluators", slow_load)
    monkeypatch.setattr(evaluators, "_loaded", False)
    monkeypatch.setattr(registry, "_kinds", dict(registry._kinds))
    start = threading.Barrier(4)
    found: list[bool] = []

    def ask():
        start.wait()
        found.append(evaluators.get_kind("late_kind") is not None)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)

    assert found == [True] * 4
