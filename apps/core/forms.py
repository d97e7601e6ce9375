"""Service `ValidationError` → form errors: the one way to put a refusal where the person looks.

Services validate and raise `django.core.exceptions.ValidationError`; views and forms call
`apply_service_errors(form, exc)` to show each message next to the field it names (or above the form
when the form has no such field, or when the error names no field). Message text is never changed.
"""

from __future__ import annotations

from collections.abc import Mapping

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
