"""The password hasher: Argon2id with OWASP's recommended cost (19 MiB, 2 passes, 1 lane).

Django's default Argon2 parameters use 100 MiB of memory and 8 lanes per hash, which made
one sign-in raise a web worker's peak memory to about 190 MB (bench/). Hashes made with
other parameters are upgraded by Django at the user's next sign-in.
"""

from django.contrib.auth.hashers import Argon2PasswordHasher


class Argon2idHasher(Argon2PasswordHasher):
    algorithm = "argon2"  # same stored prefix: existing hashes keep verifying
    time_cost = 2
    memory_cost = 19 * 1024  # KiB
    parallelism = 1
