"""factory_boy factories for the portal's models. Writes that carry rules go through services."""

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from apps.accounts.models import Membership, Role, Team
from apps.costs.models import Price, Source, UsageEvent
from apps.llm.models import Model, ModelKind, Provider, ProviderKind

DEFAULT_PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", DEFAULT_PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Team {n}")
    slug = factory.LazyAttribute(lambda t: t.name.lower().replace(" ", "-"))


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    team = factory.SubFactory(TeamFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.ENGINEER


class ProviderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Provider
        django_get_or_create = ("name",)

    name = "local"
    kind = ProviderKind.LOCAL


class ModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Model
        django_get_or_create = ("name",)

    provider = factory.SubFactory(ProviderFactory)
    name = "local-extractive"
    remote_name = factory.LazyAttribute(lambda m: m.name)
    kind = ModelKind.CHAT


class PriceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Price

    model_name = "gpt-4o-mini"
    input_per_mtok = "0.15"
    output_per_mtok = "0.60"
    cached_input_per_mtok = "0.075"
    valid_from = factory.LazyFunction(lambda: timezone.now() - timezone.timedelta(days=365))


class UsageEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UsageEvent

    request_id = factory.Sequence(lambda n: f"req-{n}")
    model = "gpt-4o-mini"
    provider = "openai"
    source = Source.API
    input_tokens = 100
    output_tokens = 50


class IncidentFactory(factory.django.DjangoModelFactory):
    """A bare incident row (no timeline, no audit event): for reads. Declare through the service to test writes."""

    class Meta:
        model = "incidents.Incident"

    title = factory.Sequence(lambda n: f"Wrong refund answers {n}")
    kind = "incorrect_outputs"
    severity = 2
    team = factory.SubFactory(TeamFactory)


class FeedbackFactory(factory.django.DjangoModelFactory):
    """One piece of production feedback as evals stores it (POST /api/v1/feedback): for reads and rollups. Build
    many with `FeedbackFactory.build_batch(n, ...)` and `bulk_create`."""

    class Meta:
        model = "evals.Feedback"

    request_id = factory.Sequence(lambda n: f"fb-req-{n}")
    thumbs = "up"
    success = True
