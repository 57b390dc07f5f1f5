from reports import views, views_mrr

app_name = "reports"
urlpatterns = [*views.urls, *views_mrr.urls]
