from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from portal.navigation import area_by_key


@login_required
def dashboard(request):
    return render(request, "portal/area_pending.html", {"area": area_by_key("costs")})
