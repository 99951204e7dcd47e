"""A password hasher that counts password checks, for tests that prove a password was
never looked at. It keeps the algorithm name "md5", so it verifies the hashes of users
created with the test settings' MD5PasswordHasher."""

import threading

from django.contrib.auth.hashers import MD5PasswordHasher


class CountingMD5PasswordHasher(MD5PasswordHasher):
    verify_calls = 0
    _lock = threading.Lock()  # requests may run in several threads at once

    def verify(self, password, encoded):
        with CountingMD5PasswordHasher._lock:
            CountingMD5PasswordHasher.verify_calls += 1
        return super().verify(password, encoded)

    @classmethod
    def reset(cls):
        with cls._lock:
            cls.verify_calls = 0


COUNTING_HASHERS = ["tests.hashers.CountingMD5PasswordHasher"]
