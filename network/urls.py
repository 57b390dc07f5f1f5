from network import views, views_fup, views_import, views_jobs, views_monitoring

app_name = "network"
urlpatterns = [
    *views.urls,
    *views_jobs.urls,
    *views_monitoring.urls,
    *views_import.urls,
    *views_fup.urls,
]
