from django.urls import path

from . import demo_views

urlpatterns = [path("", demo_views.demo_panel, name="demo")]
