"""Custom evaluators registered in code, found two ways at start-up:

1. Entry points in the group `genai_portal.evaluators` of any installed package. The entry point's name is
   the evaluator kind; its object is either a function `fn(case, params) -> Score` or a callable taking no
   argument that registers kinds itself (e.g. a module's `register()`):

       [project.entry-points."genai_portal.evaluators"]
       polite_closing = "acme_evals.checks:polite_closing"

2. Dotted paths in the `EVALS_CUSTOM_EVALUATORS` setting: modules imported for their `@evaluator`
   registrations, or functions registered under their own name.

See docs/evals.md for a full example. A broken plugin is logged and skipped; it never stops the portal.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from importlib import metadata

from apps.evals import conf
from apps.evals.evaluators.registry import register_evaluator

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "genai_portal.evaluators"


def _register_object(name: str, obj) -> None:
    if inspect.ismodule(obj):
        return  # imported: its @evaluator decorators ran
    if callable(obj):
        params = inspect.signature(obj).parameters
        if len(params) == 0:
            obj()  # a register() hook
            return
        register_evaluator(name, getattr(obj, "label", name.replace("_", " ").capitalize()), obj,
                           family="custom", default_threshold=float(getattr(obj, "default_threshold", 1.0)),
                           check_params=getattr(obj, "check_params", None))


def load_custom_evaluators() -> None:
    try:
        points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # noqa: BLE001
        points = []
    for point in points:
        try:
            _register_object(point.name, point.load())
        except Exception:  # noqa: BLE001 - a broken plugin must not stop the portal
            log.exception("could not load custom evaluator %s", point.name)
    for path in conf.get("EVALS_CUSTOM_EVALUATORS") or []:
        try:
            try:
                obj = importlib.import_module(path)
                name = path.rsplit(".", 1)[-1]
            except ImportError:
                module, _, attr = path.rpartition(".")
                obj = getattr(importlib.import_module(module), attr)
                name = attr
            _register_object(name, obj)
        except Exception:  # noqa: BLE001
            log.exception("could not load custom evaluator %s", path)
