"""`python manage.py gatehouse_fixture`: what gatehouse's Django tests ask of Django.

Reads a JSON list of operations on standard input, runs them in order and prints a JSON
list of their results on standard output, so one test costs few Python start-ups.
Every operation goes through Django's, DRF's or SimpleJWT's own public API, as the
Django side of a real deployment would; nothing here reimplements them.

Operations ({"op": name, ...arguments} -> result):
- create_user {username, email, password, hasher, iterations?} -> {id, hash}
  (make_password with that hasher; `iterations` for the PBKDF2 hashers)
- set_hash {username, hash} -> {} (a raw string, e.g. one no hasher reads)
- set_unusable_password {username} -> {}
- rename {id, username?, email?} -> {}
- check_password {username, password} -> {ok, hash, recipe_must_update}
  (`recipe_must_update`: whether GatehouseArgon2PasswordHasher would re-hash it)
- tokens {username} -> {access, refresh} (RefreshToken.for_user, as TokenObtainPairView)
- blacklist {refresh} -> {} (RefreshToken.blacklist, as TokenBlacklistView and rotation
  with BLACKLIST_AFTER_ROTATION do)
- authenticate {access} -> {user_id} or {error} (JWTAuthentication on a request
  carrying `Authorization: Bearer <access>`)
- add_note {username} -> {id}
- add_to_group {username, group} -> {}
- log_admin_action {username} -> {}
- references {user_id} -> {user_exists, notes, groups, admin_log, outstanding_user_ids}
"""

import json
import sys

from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password, get_hasher
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.test import RequestFactory
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from ghfixture.hashers import GatehouseArgon2PasswordHasher
from ghfixture.models import Note

User = get_user_model()


def create_user(username, email, password, hasher, iterations=None):
    chosen = get_hasher(hasher)
    if iterations is not None:
        encoded = chosen.encode(password, chosen.salt(), iterations=iterations)
    else:
        encoded = chosen.encode(password, chosen.salt())
    user = User.objects.create(username=username, email=email, password=encoded)
    return {"id": user.id, "hash": user.password}


def set_hash(username, hash):
    User.objects.filter(username=username).update(password=hash)
    return {}


def set_unusable_password(username):
    user = User.objects.get(username=username)
    user.set_unusable_password()
    user.save(update_fields=["password"])
    return {}


def rename(id, username=None, email=None):
    user = User.objects.get(id=id)
    if username is not None:
        user.username = username
    if email is not None:
        user.email = email
    user.save(update_fields=["username", "email"])
    return {}


def check(username, password):
    encoded = User.objects.get(username=username).password
    # The module-level check_password, without a setter: Django verifies the hash as it
    # is and does not replace it.
    recipe = GatehouseArgon2PasswordHasher()
    return {
        "ok": check_password(password, encoded),
        "hash": encoded,
        "recipe_must_update": encoded.startswith("argon2$") and recipe.must_update(encoded),
    }


def tokens(username):
    refresh = RefreshToken.for_user(User.objects.get(username=username))
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


def blacklist(refresh):
    RefreshToken(refresh).blacklist()
    return {}


def authenticate(access):
    request = RequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {access}")
    try:
        found = JWTAuthentication().authenticate(request)
    except (InvalidToken, AuthenticationFailed) as error:
        return {"error": str(error.detail)}
    if found is None:
        return {"error": "no credentials"}
    return {"user_id": found[0].id}


def add_note(username):
    return {"id": Note.objects.create(owner=User.objects.get(username=username)).id}


def add_to_group(username, group):
    User.objects.get(username=username).groups.add(Group.objects.get_or_create(name=group)[0])
    return {}


def log_admin_action(username):
    user = User.objects.get(username=username)
    LogEntry.objects.create(
        user=user, action_flag=ADDITION, object_repr=username, change_message="[]"
    )
    return {}


def references(user_id):
    return {
        "user_exists": User.objects.filter(id=user_id).exists(),
        "notes": Note.objects.filter(owner_id=user_id).count(),
        "groups": User.groups.through.objects.filter(user_id=user_id).count(),
        "admin_log": LogEntry.objects.filter(user_id=user_id).count(),
        "outstanding_user_ids": [t.user_id for t in OutstandingToken.objects.order_by("id")],
    }


OPERATIONS = {
    "create_user": create_user,
    "set_hash": set_hash,
    "set_unusable_password": set_unusable_password,
    "rename": rename,
    "check_password": check,
    "tokens": tokens,
    "blacklist": blacklist,
    "authenticate": authenticate,
    "add_note": add_note,
    "add_to_group": add_to_group,
    "log_admin_action": log_admin_action,
    "references": references,
}


class Command(BaseCommand):
    help = "Run gatehouse's test operations read as JSON from stdin (see the module doc)."

    def handle(self, *args, **options):
        results = []
        for operation in json.load(sys.stdin):
            arguments = dict(operation)
            name = arguments.pop("op")
            results.append(OPERATIONS[name](**arguments))
        self.stdout.write(json.dumps(results))
