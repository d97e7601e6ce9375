"""The use case page's panel registry: a higher app adds a box; a failing one shows an error, never a 500."""

from apps.reviews.panels import register_use_case_panel, unregister_use_case_panel, use_case_panels


def test_a_failing_panel_shows_an_error_and_the_others_still_show():
    def broken(*, use_case, user):
        raise RuntimeError("boom")

    register_use_case_panel("test-broken", broken)
    register_use_case_panel("test-empty", lambda *, use_case, user: None)
    try:
        panels = {p["title"]: p for p in use_case_panels(use_case=object(), user=None)}
    finally:
        unregister_use_case_panel("test-broken")
        unregister_use_case_panel("test-empty")
    assert panels["test-broken"]["error"] == "This panel failed to load." and "test-empty" not in panels
