"""URLs on an ISP's host (tenant schema)."""

from django.urls import include, path

from billing.views_links import document_link

urlpatterns = [
    path("", include("ispops.staff.urls")),
    path("", include("subscribers.urls")),
    path("", include("network.urls")),
    path("", include("ispops.messaging.urls")),
    path("", include("billing.urls")),
    path("", include("payments.urls")),
    path("", include("inventory.urls")),
    path("", include("tickets.urls")),
    path("", include("portal.urls")),
    path("", include("hotspot.urls")),
    path("", include("hotspot.urls_captive")),
    path("", include("reports.urls")),
    path("d/<str:signed>/", document_link, name="document_link"),
]
