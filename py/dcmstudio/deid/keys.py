"""The job's key: stretched from the user's secret, or random when there is none."""

import functools
import hashlib
import secrets

# Key stretching for a typed secret; hashlib.pbkdf2_hmac where it exists, else the same
# algorithm in Python (Pyodide's hashlib has no pbkdf2_hmac): both give identical keys.
KEY_ITERATIONS = 100_000
KEY_SALT = b"dcmstudio-deid-1"


@functools.lru_cache(maxsize=1)
def session_key():
    """Random bytes drawn once per process: the page's key for runs without a secret, so the
    preview and the run of one page session agree (another session gets another key)."""
    return secrets.token_bytes(32)


def derive_key(secret):
    """The job's key: PBKDF2-HMAC-SHA256 of the secret, or random bytes without one.

    Returns
    -------
    key : bytes
    deterministic : bool
        ``True`` when the key came from a secret (another session can repeat it).
    """
    if not secret:
        return secrets.token_bytes(32), False
    return _stretched_key(secret), True


@functools.lru_cache(maxsize=4)
def _stretched_key(secret):
    # cached: a second task with the same secret in one page session skips ~1 s in Pyodide
    password = secret.encode("utf-8")
    if hasattr(hashlib, "pbkdf2_hmac"):
        return hashlib.pbkdf2_hmac("sha256", password, KEY_SALT, KEY_ITERATIONS)
    return pbkdf2_sha256(password, KEY_SALT, KEY_ITERATIONS)


def pbkdf2_sha256(password, salt, iterations):
    """PBKDF2-HMAC-SHA256 (RFC 8018), one 32-byte block, for runtimes without OpenSSL."""
    if len(password) > 64:
        password = hashlib.sha256(password).digest()
    block = password.ljust(64, b"\x00")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
    # the loop inlined, its lookups bound to locals: it runs 100,000 times (Pyodide: ~0.4 s)
    inner_copy, outer_copy, from_bytes = inner.copy, outer.copy, int.from_bytes
    i = inner_copy()
    i.update(salt + b"\x00\x00\x00\x01")
    o = outer_copy()
    o.update(i.digest())
    u = o.digest()
    result = from_bytes(u, "big")
    for _ in range(iterations - 1):
        i = inner_copy()
        i.update(u)
        o = outer_copy()
        o.update(i.digest())
        u = o.digest()
        result ^= from_bytes(u, "big")
    return result.to_bytes(32, "big")
