from billing import views, views_dunning

app_name = "billing"
urlpatterns = [*views.urls, *views_dunning.urls]
