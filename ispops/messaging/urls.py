from ispops.messaging import views, views_campaigns

app_name = "messaging"
urlpatterns = views.urls + views_campaigns.urls
