from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from portal.navigation import area_by_key


@login_required
def eval_home(request):
    return render(request, "portal/area_pending.html", {"area": area_by_key("evals")})
