from django.conf import settings
from django.db import models


class Note(models.Model):
    """Another app's rows that point at a user. Django cascades deletes of the user in
    Python; the database constraint it creates does not (gatehouse must not 500 on it)."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    text = models.TextField(blank=True)
