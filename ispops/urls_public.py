"""URLs on the platform host (public schema)."""

from django.urls import include, path

from ispops.staff import views as staff_views
from ispops.staff.urls import auth_urlpatterns

urlpatterns = [
    path("", staff_views.public_home, name="home"),
    path("platform/", include("ispops.tenancy.urls")),
    *auth_urlpatterns,
]
