from network import views

app_name = "network"
urlpatterns = [*views.urls]
