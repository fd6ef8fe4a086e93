from django.urls import path

from . import views

urlpatterns = [path("", views.demo_panel, name="demo")]
