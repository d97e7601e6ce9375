from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from apps.accounts.permissions import is_admin
from apps.llm.selectors import provider_list


@login_required
def catalog(request):
    return render(request, "llm/catalog.html", {"providers": provider_list(), "may_edit": is_admin(request.user)})
