"""`task_queue`: a service queues a task of its own app by name, through the task object its app registered."""

import pytest

from apps.core import tasks


class FakeTask:
    name = "apps.shop.tasks.order_ship_task"

    def __init__(self):
        self.queued = []

    def delay(self, *args, **kwargs):
        self.queued.append((args, kwargs))
        return "async-result"


def test_a_registered_task_is_queued_with_its_arguments(monkeypatch):
    monkeypatch.setattr(tasks, "_QUEUEABLE", {})
    task = FakeTask()
    tasks.tasks_register(task)
    assert tasks.task_queue("apps.shop.tasks.order_ship_task", 7, rush=True) == "async-result"
    assert task.queued == [((7,), {"rush": True})]


def test_an_unregistered_name_is_refused_with_where_to_register_it(monkeypatch):
    monkeypatch.setattr(tasks, "_QUEUEABLE", {})
    with pytest.raises(LookupError, match="hooks.register"):
        tasks.task_queue("apps.shop.tasks.order_ship_task", 7)
