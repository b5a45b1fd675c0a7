"""What a production secret must be: no placeholder, at least MIN_LENGTH characters.

The one copy of the rule. settings.py refuses weak secrets with it when PRODUCTION is set;
docker/prod-secrets.sh (`make prod-secrets`) runs this file as a script before it writes a
secret, with the value on stdin (never in argv, which `ps` shows): exit 1 and the reason when
the value is weak. Standard library only, so the host's python3 runs it without the project's
environment.
"""

from __future__ import annotations

import sys

MIN_LENGTH = 24
# Exact values (after trimming, case-insensitive) that are known defaults, and words that mark
# a value as a placeholder wherever they occur (.env.example ships `change-me`).
PLACEHOLDERS = frozenset({"password", "secret", "admin", "default", "example", "test"})
PLACEHOLDER_MARKERS = ("change-me", "changeme", "change_me", "changeit")


def weakness(value: str) -> str | None:
    """Why `value` is not a production secret, or None when it is one."""
    normalized = value.strip().lower()
    if normalized in PLACEHOLDERS or any(m in normalized for m in PLACEHOLDER_MARKERS):
        return "a placeholder"
    if len(value.strip()) < MIN_LENGTH:
        return f"shorter than {MIN_LENGTH} characters"
    return None


if __name__ == "__main__":
    reason = weakness(sys.stdin.read())
    if reason:
        print(reason)
        sys.exit(1)
