from reports import views, views_mrr, views_ops

app_name = "reports"
urlpatterns = [*views.urls, *views_ops.urls, *views_mrr.urls]
