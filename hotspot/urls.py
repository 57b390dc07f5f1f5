from hotspot import views, views_agents

app_name = "hotspot"
urlpatterns = views.urls + views_agents.urls
