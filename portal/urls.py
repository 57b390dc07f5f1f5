from django.urls import path

from portal import views

app_name = "portal"
urlpatterns = [
    path("my/", views.home, name="home"),
    path("my/code/", views.code, name="code"),
    path("my/signin/password/", views.password_sign_in, name="password_sign_in"),
    path("my/choose/", views.choose, name="choose"),
    path("my/password/", views.set_password, name="set_password"),
    path("my/signout/", views.sign_out, name="sign_out"),
    path("my/logo/", views.logo, name="logo"),
]
