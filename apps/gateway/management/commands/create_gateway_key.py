"""`manage.py create_gateway_key --team SLUG --feature NAME [--use-case ID] [--alias A ...]`: prints the key only."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import Team
from apps.core.request_context import acting_as
from apps.gateway.services import gateway_key_create


class Command(BaseCommand):
    help = "Issue a gateway key for a team and print it (and only it, on one line)."

    def add_arguments(self, parser):
        parser.add_argument("--team", required=True, help="the team's slug")
        parser.add_argument("--feature", required=True, help="the feature the key's traffic is attributed to")
        parser.add_argument("--name", default="", help="a name for the key (default: the feature)")
        parser.add_argument("--use-case", type=int, default=None, help="bind the key to this use case id")
        parser.add_argument("--alias", action="append", default=[], help="an allowed model alias (repeat)")

    def handle(self, *args, team, feature, name, use_case, alias, **options):
        found = Team.objects.filter(slug=team).first()
        if found is None:
            raise CommandError(f"No team with slug {team!r}.")
        try:
            with acting_as(None):
                issued = gateway_key_create(team=found, name=name or feature, feature=feature,
                                            use_case_id=use_case, allowed_aliases=alias)
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items()))
        self.stdout.write(issued.secret)
