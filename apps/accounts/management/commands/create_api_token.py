"""`manage.py create_api_token --user U --team T [--scope S] [--days N] [--name NAME]`

Prints only the new token on stdout, so scripts and CI can capture it (`TOKEN=$(manage.py create_api_token …)`);
what was created is said on stderr. The audit event names the system as actor and the token's user.
"""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import Membership, Team, TokenScope
from apps.accounts.services import TOKEN_DEFAULT_DAYS, TOKEN_MAX_DAYS, api_token_create
from apps.core.request_context import acting_as


class Command(BaseCommand):
    help = "Create an API token for a member of a team and print it (only it) on stdout."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="username of the token's owner")
        parser.add_argument("--team", required=True, help="slug of the team the token acts for")
        parser.add_argument("--scope", default=TokenScope.READ.value,
                            help=f"one of {', '.join(TokenScope.values)} (default: read)")
        parser.add_argument("--days", type=int, default=TOKEN_DEFAULT_DAYS,
                            help=f"days until it expires, 1 to {TOKEN_MAX_DAYS} (default: {TOKEN_DEFAULT_DAYS})")
        parser.add_argument("--name", default="", help="where the token is used (default: cli-<team>)")

    def handle(self, *args, **options):
        username, slug, scope, days = options["user"], options["team"], options["scope"], options["days"]
        if scope not in TokenScope.values:
            raise CommandError(f"Unknown scope {scope!r}: choose one of {', '.join(TokenScope.values)}.")
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        team = Team.objects.filter(slug=slug).first()
        if team is None:
            raise CommandError(f"No team with the slug {slug!r}.")
        if not Membership.objects.filter(team=team, user=user).exists():
            raise CommandError(f"{username} is not a member of {team.slug}: add them to the team first.")
        name = options["name"] or f"cli-{team.slug}"
        try:
            with acting_as(None):
                issued = api_token_create(team=team, user=user, name=name, scope=scope, days=days)
        except ValidationError as exc:
            messages = exc.message_dict if hasattr(exc, "error_dict") else {"token": exc.messages}
            raise CommandError(" ".join(f"{field}: {' '.join(errs)}" for field, errs in messages.items()))
        token = issued.token
        self.stderr.write(f"Created {token.PREFIX}{token.key_id}… ({token.scope}) for {username} in {team.slug}, "
                          f"expires {token.expires_at:%Y-%m-%d %H:%M} UTC.")
        self.stdout.write(issued.secret)
