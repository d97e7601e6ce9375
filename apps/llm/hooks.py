"""What llm registers at start-up: audit links, and the signals that keep cached routes true."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save

from apps.costs.models import Price
from apps.llm.links import register_links
from apps.llm.models import Deployment, Model, ModelAlias, Provider
from apps.llm.routing import routes_changed

ROUTED_MODELS = (Provider, Model, Price, ModelAlias, Deployment)


def _changed(sender, **kwargs) -> None:
    routes_changed()


def register() -> None:
    register_links()
    for sender in ROUTED_MODELS:
        post_save.connect(_changed, sender=sender, dispatch_uid=f"llm-routes-{sender._meta.label}-save")
        post_delete.connect(_changed, sender=sender, dispatch_uid=f"llm-routes-{sender._meta.label}-delete")
