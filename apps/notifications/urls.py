from django.urls import path

from apps.notifications import views

app_name = "notifications"

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("read/", views.mark_read, name="mark_read"),
    path("unread-count/", views.unread_badge, name="unread_count"),
    path("waiting-count/", views.waiting_badge, name="waiting_count"),
]
