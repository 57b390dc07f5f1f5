from ispops.messaging import views

app_name = "messaging"
urlpatterns = views.urls
