from django.contrib.auth.hashers import Argon2PasswordHasher


class GatehouseArgon2PasswordHasher(Argon2PasswordHasher):
    """Argon2id at gatehouse's parameters (OWASP: m=19 MiB, t=2, p=1). Listed first in
    PASSWORD_HASHERS of a Django project running beside gatehouse, Django neither
    re-hashes what gatehouse wrote nor writes hashes gatehouse re-hashes (README, "Moving
    from Django")."""

    time_cost = 2
    memory_cost = 19456
    parallelism = 1
