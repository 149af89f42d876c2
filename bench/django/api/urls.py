from django.urls import path
from rest_framework.routers import SimpleRouter
from rest_framework_simplejwt.views import (
    TokenBlacklistView,
    TokenObtainPairView,
    TokenRefreshView,
    TokenVerifyView,
)

from . import views

router = SimpleRouter()
router.register("users", views.UserViewSet)

urlpatterns = [
    path("register/", views.RegisterView.as_view()),
    path("login/", TokenObtainPairView.as_view()),
    path("token/refresh/", TokenRefreshView.as_view()),
    path("token/verify/", TokenVerifyView.as_view()),
    path("logout/", TokenBlacklistView.as_view()),
    path("delete_account/", views.DeleteAccountView.as_view()),
    path("reset_password/", views.ResetPasswordView.as_view()),
    path("reset_password/confirm/", views.ResetConfirmView.as_view()),
    # Before the router, so "me" is not read as a user id.
    path("users/me/", views.MeView.as_view()),
    *router.urls,
]
