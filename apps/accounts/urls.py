from django.contrib.auth import views as auth_views
from django.urls import path

from apps.accounts import views
from apps.accounts.forms import ThrottledAuthenticationForm

app_name = "accounts"

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="accounts/login.html", redirect_authenticated_user=True,
                                                authentication_form=ThrottledAuthenticationForm),
         name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),  # POST only (Django 5)
    path("password/", views.PasswordChange.as_view(), name="password_change"),
    path("teams/", views.team_list_view, name="team_list"),
    path("teams/new/", views.team_create_view, name="team_create"),
    path("teams/<slug:slug>/", views.team_detail, name="team_detail"),
    path("teams/<slug:slug>/members/", views.member_add, name="member_add"),
    path("teams/<slug:slug>/members/<int:user_id>/role/", views.member_change, name="member_change"),
    path("teams/<slug:slug>/members/<int:user_id>/remove/", views.member_remove, name="member_remove"),
    path("teams/<slug:slug>/tokens/new/", views.token_create, name="token_create"),
    path("teams/<slug:slug>/tokens/<int:pk>/revoke/", views.token_revoke, name="token_revoke"),
]
