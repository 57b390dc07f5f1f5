from payments import views_callbacks

app_name = "payments"
urlpatterns = [*views_callbacks.urls]
