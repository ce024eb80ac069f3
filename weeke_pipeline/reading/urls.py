"""URL map of the reading app."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from weeke_pipeline.reading import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("worklist/", views.worklist, name="worklist"),
    path("next/", views.next_case, name="next_case"),
    path("api/preferences", views.preferences_api, name="preferences_api"),
    path("case/<str:code>/", views.read_page, name="read_page"),
    path("case/<str:code>/image/<str:sequence>.nii.gz", views.image, name="image"),
    path("api/case/<str:code>/read", views.read_api, name="read_api"),
    path("api/case/<str:code>/read/<str:action>", views.read_api, name="read_action"),
    path("api/score/<str:form_id>/<str:version>", views.score_api, name="score_api"),
    path("adjudication/", views.adjudication_list, name="adjudication_list"),
    path("adjudication/<str:code>/", views.adjudication_page, name="adjudication_page"),
    path("api/case/<str:code>/consensus", views.consensus_api, name="consensus_api"),
    path("api/case/<str:code>/consensus/<str:action>", views.consensus_api,
         name="consensus_action"),
    path("coordinator/", views.coordinator, name="coordinator"),
    path("coordinator/lock", views.coordinator_lock, name="coordinator_lock"),
    path("coordinator/settings", views.coordinator_settings, name="coordinator_settings"),
    path("admin/", admin.site.urls),
]
