from payments import views, views_callbacks, views_mpesa, views_pay, views_reconcile

app_name = "payments"
urlpatterns = [
    *views_callbacks.urls,
    *views_pay.urls,
    *views.urls,
    *views_mpesa.urls,
    *views_reconcile.urls,
]
