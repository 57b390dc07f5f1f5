from subscribers.views import (
    bulk,
    customers,
    imports,
    jobs,
    new_customer,
    pipeline,
    plans,
    settings,
    sites,
    top_up,
)

app_name = "subscribers"
urlpatterns = [
    *bulk.urls,
    *new_customer.urls,
    *customers.urls,
    *top_up.urls,
    *plans.urls,
    *sites.urls,
    *pipeline.urls,
    *jobs.urls,
    *imports.urls,
    *settings.urls,
]
