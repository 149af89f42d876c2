"""schemathesis hooks for scripts/fuzz-api: every request is sent as a signed-in superuser.

As a superuser, the fuzzer may demote, deactivate or delete the very user whose token it
holds, and would then spend the rest of the run on 401s and 403s. So the token is
checked every few seconds (GET /api/users/me/), and when it no longer belongs to an
active superuser a new one is made with `gatehouse createsuperuser` and signed in.

Reads FUZZ_BASE (the server's URL), FUZZ_BIN (the gatehouse binary) and
FUZZ_ADMIN_PASSWORD from the environment; the binary finds the database in DATABASE_URL.
"""

import itertools
import json
import os
import subprocess
import urllib.error
import urllib.request

import schemathesis

BASE = os.environ["FUZZ_BASE"]
BIN = os.environ["FUZZ_BIN"]
PASSWORD = os.environ["FUZZ_ADMIN_PASSWORD"]


def _request(path, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(BASE + path, data, headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as error:
        return error.code, None


@schemathesis.auth(refresh_interval=2)
class Superuser:
    def __init__(self):
        self.serial = itertools.count(1)
        self.token = None

    def _still_superuser(self):
        status, user = _request("/api/users/me/", token=self.token)
        return status == 200 and user["is_active"] and user["is_staff"] and user["is_superuser"]

    def get(self, case, context):
        if self.token and self._still_superuser():
            return self.token
        username = f"fuzz-admin-{next(self.serial)}"
        subprocess.run(
            [BIN, "createsuperuser", "--username", username,
             "--email", f"{username}@example.com", "--password-stdin"],
            input=PASSWORD + "\n", text=True, capture_output=True, check=True,
        )
        status, tokens = _request("/api/login/", {"username": username, "password": PASSWORD})
        if status != 200:
            raise RuntimeError(f"{username} cannot log in: {status}")
        self.token = tokens["access"]
        return self.token

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
