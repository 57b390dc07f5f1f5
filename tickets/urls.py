from tickets import views

app_name = "tickets"
urlpatterns = [*views.urls]
