"""Service `ValidationError` → form errors: the one way to put a refusal where the person looks.

Services validate and raise `django.core.exceptions.ValidationError`; views and forms call
`apply_service_errors(form, exc)` to show each message next to the field it names (or above the form
when the form has no such field, or when the error names no field). Message text is never changed.
A view that calls one service for a valid form writes it with `service_errors_on(form)`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from django import forms
from django.core.exceptions import ValidationError


def apply_service_errors(form: forms.BaseForm, exc: ValidationError, field_map: Mapping[str, str] | None = None) -> None:
    """Add the messages of `exc` to `form`.

    A dict-shaped error puts each key's messages on the form field of that name — after renaming it by
    `field_map` (service name → form field name) — when the form has that field, else on the non-field
    errors. A list-shaped error goes to the non-field errors.
    """
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc.messages)
        return
    field_map = field_map or {}
    for key, messages in exc.message_dict.items():
        field = field_map.get(key, key)
        form.add_error(field if field in form.fields else None, messages)


@contextmanager
def service_errors_on(form: forms.BaseForm, field_map: Mapping[str, str] | None = None) -> Iterator[None]:
    """The one shape of "call the service; on a ValidationError, show it on the form and render it again":

        if request.method == "POST" and form.is_valid():
            with service_errors_on(form):
                budget = services.budget_create(actor=request.user, **form.cleaned_data)
                messages.success(request, f"Budget '{budget.name}' created.")
                return redirect("costs:budget_list")
        return render(request, "costs/budget_form.html", {"form": form}, status=400 if form.errors else 200)

    A ValidationError raised in the block goes onto the form (apply_service_errors) and the block is left;
    anything else propagates.
    """
    try:
        yield
    except ValidationError as exc:
        apply_service_errors(form, exc, field_map)
