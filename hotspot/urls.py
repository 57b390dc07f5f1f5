from hotspot import views, views_agents, views_bypass, views_live

app_name = "hotspot"
urlpatterns = views.urls + views_agents.urls + views_live.urls + views_bypass.urls
