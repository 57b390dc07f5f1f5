from subscribers.views import customers, imports, jobs, pipeline, plans, settings, sites

app_name = "subscribers"
urlpatterns = [
    *customers.urls,
    *plans.urls,
    *sites.urls,
    *pipeline.urls,
    *jobs.urls,
    *imports.urls,
    *settings.urls,
]
