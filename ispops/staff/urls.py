from django.urls import path

from ispops.staff import settings_page, views

auth_urlpatterns = [
    path("login/", views.login, name="login"),
    path("logout/", views.logout, name="logout"),
    path("password/change/", views.password_change, name="password_change"),
    path("password/change/done/", views.password_change_done, name="password_change_done"),
    path("password/reset/", views.password_reset, name="password_reset"),
    path("password/reset/sent/", views.password_reset_done, name="password_reset_done"),
    path(
        "password/set/<uidb64>/<token>/",
        views.password_reset_confirm,
        name="password_reset_confirm",
    ),
    path("password/set/done/", views.password_reset_complete, name="password_reset_complete"),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("staff/", views.staff_list, name="staff_list"),
    path("staff/invite/", views.staff_invite, name="staff_invite"),
    path("staff/<int:pk>/", views.staff_detail, name="staff_detail"),
    path("staff/<int:pk>/active/", views.staff_set_active, name="staff_set_active"),
    path("staff/<int:pk>/resend/", views.staff_resend_invite, name="staff_resend_invite"),
    path("branches/", views.branch_list, name="branches"),
    path("branches/<int:pk>/", views.branch_detail, name="branch_detail"),
    *settings_page.urls,
    *auth_urlpatterns,
]
