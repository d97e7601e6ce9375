"""`apply_service_errors` and `service_errors_on`: a service's ValidationError lands where the person looks, words unchanged."""

import pytest
from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from apps.core.forms import apply_service_errors, service_errors_on


class NameForm(forms.Form):
    name = forms.CharField()
    username = forms.CharField(required=False)


def _bound_valid_form() -> NameForm:
    form = NameForm({"name": "Ada", "username": "ada"})
    assert form.is_valid()
    return form


def test_a_field_error_goes_next_to_the_field_the_form_has():
    form = _bound_valid_form()
    apply_service_errors(form, ValidationError({"name": ["A prompt with this name exists.", "Too long."]}))
    assert form.errors["name"] == ["A prompt with this name exists.", "Too long."]
    assert form.non_field_errors() == []
    assert "name" not in form.cleaned_data


def test_an_error_about_a_field_the_form_lacks_goes_above_the_form():
    form = _bound_valid_form()
    apply_service_errors(form, ValidationError({"team": ["Choose one of your teams."]}))
    assert form.non_field_errors() == ["Choose one of your teams."]
    assert "team" not in form.errors


def test_a_non_field_error_in_a_dict_goes_above_the_form():
    form = _bound_valid_form()
    apply_service_errors(form, ValidationError({NON_FIELD_ERRORS: ["The budget was changed meanwhile."]}))
    assert form.non_field_errors() == ["The budget was changed meanwhile."]


def test_a_list_error_goes_above_the_form_with_every_message():
    form = _bound_valid_form()
    apply_service_errors(form, ValidationError(["Already a member.", "Reload the page."]))
    assert form.non_field_errors() == ["Already a member.", "Reload the page."]
    assert list(form.errors) == [NON_FIELD_ERRORS]


def test_a_single_message_error_keeps_its_params_interpolated_text():
    form = _bound_valid_form()
    apply_service_errors(form, ValidationError("At most %(n)s tokens.", params={"n": 5}))
    assert form.non_field_errors() == ["At most 5 tokens."]


def test_field_map_renames_a_service_field_to_the_form_field():
    form = _bound_valid_form()
    apply_service_errors(form, ValidationError({"user": ["No such person."], "name": ["Taken."]}),
                         field_map={"user": "username"})
    assert form.errors["username"] == ["No such person."]
    assert form.errors["name"] == ["Taken."]
    assert form.non_field_errors() == []


def test_service_errors_on_puts_the_refusal_on_the_form_and_leaves_the_block():
    form = _bound_valid_form()
    reached = []
    with service_errors_on(form, field_map={"handle": "username"}):
        raise ValidationError({"handle": ["This handle is taken."]})
        reached.append("after the service")  # the message and redirect of a view: never reached
    assert form.errors["username"] == ["This handle is taken."] and reached == []


def test_service_errors_on_lets_a_success_and_other_errors_through():
    form = _bound_valid_form()
    with service_errors_on(form):
        saved = "saved"
    assert saved == "saved" and form.errors == {}
    with pytest.raises(PermissionError), service_errors_on(form):
        raise PermissionError("not yours")
    assert form.errors == {}
