from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from apps.accounts import services
from apps.accounts.forms import ApiTokenForm, MemberAddForm, MemberRoleForm, TeamCreateForm
from apps.accounts.models import ApiToken, Membership, Role, Team
from apps.accounts.ownership import owned_by_team
from apps.accounts.permissions import Action, can, get_object_for, is_admin, team_roles
from apps.accounts.selectors import api_token_list, team_list, team_members
from apps.core.forms import apply_service_errors


def _error_text(exc: ValidationError) -> str:
    return " ".join(exc.messages)


class PasswordChange(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("home")

    def form_valid(self, form):
        # The service saves the password and records the event in one transaction (the form checked it).
        services.user_password_change(user=form.user, new_password=form.cleaned_data["new_password1"],
                                      actor=self.request.user)
        update_session_auth_hash(self.request, form.user)  # stay logged in here; other sessions end
        messages.success(self.request, "Your password was changed.")
        return redirect(self.success_url)


@login_required
@require_GET
def team_list_view(request):
    return _team_list_page(request, TeamCreateForm() if is_admin(request.user) else None)


def _team_list_page(request, create_form, status=200):
    return render(request, "accounts/team_list.html", {
        "teams": team_list(actor=request.user), "create_form": create_form,
        "my_roles": team_roles(request.user),
    }, status=status)


@login_required
@require_POST
def team_create_view(request):
    if not is_admin(request.user):
        raise PermissionDenied("Only admins create teams.")
    form = TeamCreateForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            team = services.team_create(name=data["name"], slug=data["slug"], description=data["description"],
                                        owner=data["owner"], actor=request.user)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Team {team.name} created with {data['owner'].get_username()} as owner.")
            return redirect(team)
    return _team_list_page(request, form, status=400)


def _team_page(request, team: Team, *, status=200, token_form=None, member_form=None, member_errors=None):
    may_manage = can(request.user, Action.MANAGE, team)
    my_role = team_roles(request.user).get(team.pk)
    members = list(team_members(team=team))
    for membership in members:
        membership.error = (member_errors or {}).get(membership.user_id, "")
    tokens = []
    if my_role is not None or may_manage:
        tokens = list(api_token_list(team=team, user=None if may_manage else request.user))
    for token in tokens:
        token.may_revoke = token.revoked_at is None and (token.user_id == request.user.pk or may_manage)

    return render(request, "accounts/team_detail.html", {
        "team": team,
        "members": members,
        "owned": owned_by_team(team),
        "tokens": tokens,
        "my_role": my_role,
        "may_manage": may_manage,
        "may_create_token": my_role is not None,
        "roles": Role.choices,
        "token_form": token_form or ApiTokenForm(),
        "member_form": member_form or MemberAddForm(),
    }, status=status)


@login_required
@require_GET
def team_detail(request, slug: str):
    team = get_object_for(request.user, Team.objects.all(), Action.VIEW, slug=slug)
    return _team_page(request, team)


@login_required
@require_POST
def member_add(request, slug: str):
    team = get_object_for(request.user, Team.objects.all(), Action.MANAGE, slug=slug)
    form = MemberAddForm(request.POST)
    if form.is_valid():
        user, role = form.cleaned_data["username"], form.cleaned_data["role"]
        existing = Membership.objects.filter(team=team, user=user).first()
        if existing is not None:
            form.add_error("username", f"{user.get_username()} is already a member ({existing.get_role_display()}): "
                                       "change their role in the list above.")
        else:
            try:
                services.membership_set(team=team, user=user, role=role, actor=request.user)
            except ValidationError as exc:
                apply_service_errors(form, exc, {"user": "username"})
            else:
                messages.success(request, f"{user.get_username()} joined {team.name} as {Role(role).label.lower()}.")
                return redirect(team)
    return _team_page(request, team, status=400, member_form=form)


@login_required
@require_POST
def member_change(request, slug: str, user_id: int):
    team = get_object_for(request.user, Team.objects.all(), Action.MANAGE, slug=slug)
    membership = get_object_or_404(Membership.objects.select_related("user"), team=team, user_id=user_id)
    form = MemberRoleForm(request.POST)
    if not form.is_valid():
        return _team_page(request, team, status=400,
                          member_errors={user_id: f"Choose a role: {', '.join(Role.values)}."})
    role = form.cleaned_data["role"]
    username = membership.user.get_username()
    if role == membership.role:
        messages.info(request, f"{username} already is {Role(role).label.lower()}: nothing changed.")
        return redirect(team)
    try:
        services.membership_set(team=team, user=membership.user, role=role, actor=request.user)
    except ValidationError as exc:
        return _team_page(request, team, status=400, member_errors={user_id: _error_text(exc)})
    messages.success(request, f"{username} is now {Role(role).label.lower()} of {team.name}.")
    return redirect(team)


@login_required
@require_POST
def member_remove(request, slug: str, user_id: int):
    team = get_object_for(request.user, Team.objects.all(), Action.MANAGE, slug=slug)
    membership = get_object_or_404(Membership.objects.select_related("user"), team=team, user_id=user_id)
    username = membership.user.get_username()
    try:
        services.membership_remove(team=team, user=membership.user, actor=request.user)
    except ValidationError as exc:
        return _team_page(request, team, status=400, member_errors={user_id: _error_text(exc)})
    messages.success(request, f"{username} was removed from {team.name}; their tokens for it were revoked.")
    if user_id == request.user.pk:
        return redirect("accounts:team_list")
    return redirect(team)


@never_cache  # the response holds the secret: no cache may keep it
@login_required
@require_POST
def token_create(request, slug: str):
    team = get_object_for(request.user, Team.objects.all(), Action.VIEW, slug=slug)
    if team.pk not in team_roles(request.user):
        raise PermissionDenied(f"Tokens act for a member of a team: you are not a member of {team.name}.")
    form = ApiTokenForm(request.POST)
    if form.is_valid():
        try:
            issued = services.api_token_create(team=team, user=request.user, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            return render(request, "accounts/token_created.html", {"team": team, "issued": issued})
    return _team_page(request, team, status=400, token_form=form)


@login_required
@require_POST
def token_revoke(request, slug: str, pk: int):
    team = get_object_for(request.user, Team.objects.all(), Action.VIEW, slug=slug)
    token = get_object_or_404(ApiToken, pk=pk, team=team)
    if token.user_id != request.user.pk and not can(request.user, Action.MANAGE, team):
        raise PermissionDenied(f"Only the token's owner or an owner of {team.name} may revoke it.")
    if token.revoked_at is not None:
        messages.info(request, f"Token {token} was already revoked.")
    else:
        services.api_token_revoke(token=token, actor=request.user)
        messages.success(request, f"Token {token} revoked: it stops working now.")
    return redirect(f"{team.get_absolute_url()}#tokens")
