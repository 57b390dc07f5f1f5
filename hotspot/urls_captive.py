"""The captive portal's routes: /hs/ on the ISP's host, public (hotspot.views_captive)."""

from django.urls import path

from hotspot import views_bypass
from hotspot import views_captive as views

app_name = "captive"
urlpatterns = [
    path("hs/", views.home, name="home"),
    path("hs/voucher/", views.voucher, name="voucher"),
    path("hs/buy/", views.buy, name="buy"),
    path("hs/pay/<slug:public_id>/", views.pay_status, name="pay_status"),
    path("hs/paid/", views.already_paid, name="paid"),
    path("hs/trial/", views.trial, name="trial"),
    path("hs/connect/", views.connect, name="connect"),
    *views_bypass.captive_urls,
]
