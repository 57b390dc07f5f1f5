"""The portal's routes: sign-in and home here; each page module lists its own."""

from django.urls import path

from portal import (
    views,
    views_claim,
    views_data,
    views_invoices,
    views_pay,
    views_plan,
    views_profile,
    views_staff,
    views_tickets,
)

app_name = "portal"
urlpatterns = [
    path("my/", views.home, name="home"),
    path("my/code/", views.code, name="code"),
    path("my/signin/password/", views.password_sign_in, name="password_sign_in"),
    path("my/choose/", views.choose, name="choose"),
    path("my/password/", views.set_password, name="set_password"),
    path("my/signout/", views.sign_out, name="sign_out"),
    path("my/logo/", views.logo, name="logo"),
    path("my/as/<int:pk>/", views_staff.view_as, name="view_as"),
    path("my/activity/<int:pk>/", views_staff.activity, name="activity"),
    *views_pay.urls,
    *views_invoices.urls,
    *views_claim.urls,
    *views_plan.urls,
    *views_tickets.urls,
    *views_profile.urls,
    *views_data.urls,
]
