from django import forms
from django.contrib.auth import get_user_model

from apps.accounts.models import Role, TokenScope
from apps.accounts.services import TOKEN_DEFAULT_DAYS, TOKEN_MAX_DAYS


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
