"""The main navigation: every area links to its own page (no placeholder route), and the current area is marked."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.navigation import AREAS


@pytest.mark.django_db
def test_every_navigation_link_opens_its_area_page(client, engineer):
    client.force_login(engineer)
    nav = client.get(reverse("home")).context["nav_areas"]
    assert [item["key"] for item in nav] == [area.key for area in AREAS]
    for item, area in zip(nav, AREAS, strict=True):
        assert item["url"] == reverse(area.url_name)
        assert not item["url"].startswith("/areas/")
        assert client.get(item["url"]).status_code == 200, item["url"]


@pytest.mark.django_db
def test_the_current_area_is_marked_active(client, engineer):
    client.force_login(engineer)
    nav = client.get(reverse("prompts:list")).context["nav_areas"]
    assert [item["key"] for item in nav if item["active"]] == ["prompts"]
