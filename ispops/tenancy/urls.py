from django.urls import path

from ispops.tenancy import views

app_name = "platform"
urlpatterns = [
    path("", views.isp_list, name="isps"),
]
