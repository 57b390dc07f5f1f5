from reports import views, views_money, views_mrr, views_ops, views_settings

app_name = "reports"
urlpatterns = [
    *views.urls,
    *views_ops.urls,
    *views_money.urls,
    *views_mrr.urls,
    *views_settings.urls,
]
