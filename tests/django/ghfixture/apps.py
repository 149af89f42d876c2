from django.apps import AppConfig


class GhFixtureConfig(AppConfig):
    name = "ghfixture"
    default_auto_field = "django.db.models.BigAutoField"
