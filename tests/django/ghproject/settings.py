"""A minimal Django + DRF + SimpleJWT project, as the API gatehouse replaces would have
it, for gatehouse's tests of living beside Django (API.md §9, tests/api/django.rs).

It reads the same two variables gatehouse reads, so both are pointed at one database
with one key:
- DATABASE_URL: sqlite://PATH (PATH absolute, so sqlite:////tmp/x.sqlite3 or
  sqlite:///tmp/x.sqlite3 alike) or postgres://user:password@host:port/name;
- SECRET_KEY: Django's key, and so SimpleJWT's HS256 signing key.
"""

import os
from urllib.parse import unquote, urlsplit

SECRET_KEY = os.environ["SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "ghproject.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def database_from_url(url):
    if url.startswith("sqlite://"):
        path = url[len("sqlite://"):].split("?", 1)[0]
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": "/" + path.lstrip("/")}
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"DATABASE_URL: expected sqlite:// or postgres://, got {parts.scheme}://")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }


DATABASES = {"default": database_from_url(os.environ["DATABASE_URL"])}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    "ghfixture",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.request",
            ]
        },
    }
]

# Django's default list, in Django's default order: a deployment that never touched the
# setting writes PBKDF2-SHA256 and reads the rest.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
    ],
}
# SimpleJWT's defaults (HS256 with SECRET_KEY, user_id claim, 5 min / 1 day) are what
# gatehouse speaks; nothing to set.
