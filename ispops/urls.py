"""URLs on an ISP's host (tenant schema)."""

from django.urls import include, path

urlpatterns = [
    path("", include("ispops.staff.urls")),
]
