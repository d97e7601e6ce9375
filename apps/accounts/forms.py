from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm

from apps.accounts import services, throttle
from apps.accounts.models import Role, TokenScope
from apps.accounts.services import TOKEN_DEFAULT_DAYS, TOKEN_MAX_DAYS
from apps.core.middleware import client_ip


class UsernameField(forms.CharField):
    """A username typed by a person, resolved to an active user with a message that says what went wrong."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 150)
        super().__init__(**kwargs)
        self.widget.attrs.setdefault("autocomplete", "off")

    def clean(self, value):
        username = super().clean(value).strip()
        if not username:
            return None
        user = get_user_model().objects.filter(username__iexact=username).first()
        if user is None:
            raise forms.ValidationError(f"No user is called {username!r}. Check the spelling: it is their login name.")
        if not user.is_active:
            raise forms.ValidationError(f"{user.get_username()} is deactivated.")
        return user


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Where the token is used, e.g. 'ci-pipeline'.")
    scope = forms.ChoiceField(choices=TokenScope.choices, initial=TokenScope.READ)
    days = forms.IntegerField(min_value=1, max_value=TOKEN_MAX_DAYS, initial=TOKEN_DEFAULT_DAYS,
                              label="Expires in (days)")


class MemberAddForm(forms.Form):
    username = UsernameField(label="Username")
    role = forms.ChoiceField(choices=Role.choices, initial=Role.ENGINEER)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class TeamCreateForm(forms.Form):
    name = forms.CharField(max_length=120)
    slug = forms.CharField(max_length=64, required=False, help_text="Leave empty to derive it from the name.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    owner = UsernameField(label="First owner", help_text="Username of the person who will manage the team.")


class ThrottledSignInMixin:
    """Sign-in refused while the account or the client address is throttled (apps/accounts/throttle.py)."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "Your username and password did not match. Please try again.",
        "throttled_account": ("Too many failed sign-ins for this account. It is locked for %(minutes)s more "
                              "minute(s); try again later, or ask an admin if it was not you."),
        "throttled_address": ("Too many failed sign-ins from your network address. Sign-in from it is paused "
                              "for %(minutes)s more minute(s)."),
    }

    def clean(self):
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is None or not password:
            return super().clean()
        address = client_ip(self.request) if self.request is not None else None
        block = throttle.login_block(username, address)
        if block is not None:
            _account, by_address = throttle.login_failure(username, address, refused=True)
            self._record(services, username, address, None, by_address)
            raise forms.ValidationError(self.error_messages[f"throttled_{block.scope}"], code="throttled",
                                        params={"minutes": block.minutes})
        try:
            cleaned = super().clean()
        except forms.ValidationError as exc:
            if exc.code == "invalid_login" or any(e.code == "invalid_login" for e in exc.error_list):
                account, by_address = throttle.login_failure(username, address)
                self._record(services, username, address, account, by_address)
            raise
        throttle.login_success(username)
        return cleaned

    @staticmethod
    def _record(services, username, address, account, by_address) -> None:
        seconds = settings.LOGIN_LOCKOUT_SECONDS
        if account is not None and account.newly_blocked:
            services.sign_in_blocked_record(scope="account", username=username, address=address,
                                            failures=account.count, seconds=seconds)
        if by_address.newly_blocked:
            services.sign_in_blocked_record(scope="address", username=username, address=address,
                                            failures=by_address.count, seconds=seconds)


class ThrottledAuthenticationForm(ThrottledSignInMixin, AuthenticationForm):
    """The portal's login page."""


class ThrottledAdminAuthenticationForm(ThrottledSignInMixin, AdminAuthenticationForm):
    """/admin/login/: the same throttle (it is another way to try passwords)."""

    error_messages = {**AdminAuthenticationForm.error_messages,
                      **{k: v for k, v in ThrottledSignInMixin.error_messages.items() if k.startswith("throttled")}}
