from inventory import views

app_name = "inventory"
urlpatterns = views.urls
