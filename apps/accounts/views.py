from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_POST

from apps.accounts import services
from apps.accounts.forms import ApiTokenForm
from apps.accounts.models import ApiToken, Team
from apps.accounts.permissions import Action, can, get_object_for, team_roles
from apps.accounts.selectors import api_token_list, team_list, team_members
from apps.audit.services import audit_record


class PasswordChange(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("home")

    def form_valid(self, form):
        response = super().form_valid(form)
        audit_record(action="user.password.change", obj=self.request.user, object_type="auth.user")
        messages.success(self.request, "Your password was changed.")
        return response


@login_required
def team_list_view(request):
    return render(request, "accounts/team_list.html", {"teams": team_list(actor=request.user)})


@login_required
def team_detail(request, slug: str):
    team = get_object_for(request.user, Team.objects.all(), Action.VIEW, slug=slug)
    may_manage = can(request.user, Action.MANAGE, team)
    is_member = team.pk in team_roles(request.user)
    tokens = api_token_list(team=team, user=None if may_manage else request.user) if is_member or may_manage else []
    return render(request, "accounts/team_detail.html", {
        "team": team,
        "members": team_members(team=team),
        "owned": team_owned_summary(team),
        "tokens": tokens,
        "may_manage": may_manage,
        "may_create_token": is_member,
        "token_form": ApiTokenForm(),
    })


def team_owned_summary(team: Team) -> list[dict]:
    """What the team owns, one row per kind; feature apps add rows as they arrive."""
    from portal.ownership import owned_by_team

    return owned_by_team(team)


@login_required
@require_POST
def token_create(request, slug: str):
    team = get_object_for(request.user, Team.objects.all(), Action.VIEW, slug=slug)
    form = ApiTokenForm(request.POST)
    if form.is_valid():
        try:
            issued = services.api_token_create(team=team, user=request.user, **form.cleaned_data)
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            return render(request, "accounts/token_created.html", {"team": team, "issued": issued})
    return render(request, "accounts/team_detail.html", {
        "team": team, "members": team_members(team=team), "owned": team_owned_summary(team),
        "tokens": api_token_list(team=team, user=request.user), "may_manage": can(request.user, Action.MANAGE, team),
        "may_create_token": True, "token_form": form,
    }, status=400)


@login_required
@require_POST
def token_revoke(request, slug: str, pk: int):
    team = get_object_for(request.user, Team.objects.all(), Action.VIEW, slug=slug)
    token = get_object_or_404(ApiToken, pk=pk, team=team)
    if token.user_id != request.user.pk and not can(request.user, Action.MANAGE, team):
        messages.error(request, "Only the token's owner or a team owner may revoke it.")
        return redirect("accounts:team_detail", slug=slug)
    services.api_token_revoke(token=token)
    messages.success(request, f"Token {token} revoked.")
    return redirect("accounts:team_detail", slug=slug)
