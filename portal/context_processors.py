from portal.navigation import AREAS, area_url


def navigation(request):
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {"nav_areas": []}
    current = getattr(getattr(request, "resolver_match", None), "namespace", "")
    return {
        "nav_areas": [
            {"key": a.key, "label": a.label, "summary": a.summary, "url": area_url(a), "active": current == a.key} for a in AREAS
        ]
    }
