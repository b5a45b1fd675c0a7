"""What a production secret must be: no placeholder, at least MIN_LENGTH characters, and not
guessable for its length: no repeated pattern, no alphabet or keyboard run, no value made of
common password words padded with digits, and enough character variety (MIN_BITS estimated).

The one copy of the rule. settings.py refuses weak secrets with it when PRODUCTION is set;
docker/prod-secrets.sh (`make prod-secrets`) runs this file as a script before it writes a
secret, with the value on stdin (never in argv, which `ps` shows): exit 1 and the reason when
the value is weak. Standard library only, so the host's python3 runs it without the project's
environment.
"""

from __future__ import annotations

import math
import re
import sys
from collections import Counter

MIN_LENGTH = 24
# Estimated from the value's own characters (Shannon entropy of their frequencies x length):
# a random 24-character hex string, the shortest random value the length rule admits, scores
# about 80 (the lowest of 300,000 drawn: 60), token_urlsafe(32) (what the generator writes)
# about 190, 24 copies of one letter 0. The estimate is crude: the other rules catch patterns.
MIN_BITS = 48
# Exact values (after trimming, case-insensitive) that are known defaults, and words that mark
# a value as a placeholder wherever they occur (.env.example ships `change-me`).
PLACEHOLDERS = frozenset({"password", "secret", "admin", "default", "example", "test"})
PLACEHOLDER_MARKERS = ("change-me", "changeme", "change_me", "changeit")
# Words of the most common human-chosen passwords: a value that is little else (what remains
# once they and the digits are removed is short) is a dictionary word with digits.
COMMON_WORDS = (
    "password", "passwort", "passw0rd", "secret", "admin", "welcome", "letmein", "qwerty",
    "azerty", "dragon", "monkey", "master", "login", "sunshine", "princess", "football",
    "baseball", "shadow", "summer", "winter", "spring", "autumn", "iloveyou", "trustno1",
    "default", "example", "changeme", "test", "user", "root", "token", "access", "server",
    "mlflow", "redis", "postgres", "grafana", "serving", "training", "optuna", "company",
)  # fmt: skip
# The rest once those words, digits and punctuation are gone must be at least this long.
MIN_REMAINDER = 12
# Runs of keys or letters: "abcdef...", "123456...", "qwertyuiop..."
SEQUENCES = (
    "abcdefghijklmnopqrstuvwxyz", "01234567890", "qwertyuiopasdfghjklzxcvbnm", "azertyuiop",
)  # fmt: skip
MAX_RUN_SHARE = 0.5


def estimated_bits(value: str) -> float:
    """Shannon entropy of the value's character frequencies times its length."""
    counts = Counter(value)
    total = len(value)
    return -sum(n / total * math.log2(n / total) for n in counts.values()) * total


def _period(value: str) -> int:
    """The shortest p with value[i] == value[i + p] for every i (len(value) when none)."""
    for p in range(1, len(value)):
        if value[p:] == value[:-p]:
            return p
    return len(value)


def _in_runs(value: str) -> int:
    """How many characters sit in runs of 4+ consecutive characters of SEQUENCES (either way)."""
    lower = value.lower()
    covered: set[int] = set()
    for sequence in SEQUENCES:
        for text in (sequence, sequence[::-1]):
            for start in range(len(lower) - 3):
                end = start + 4
                if lower[start:end] in text:
                    while end < len(lower) and lower[start : end + 1] in text:
                        end += 1
                    covered.update(range(start, end))
    return len(covered)


def weakness(value: str) -> str | None:
    """Why `value` is not a production secret, or None when it is one."""
    normalized = value.strip().lower()
    if normalized in PLACEHOLDERS or any(m in normalized for m in PLACEHOLDER_MARKERS):
        return "a placeholder"
    value = value.strip()
    if len(value) < MIN_LENGTH:
        return f"shorter than {MIN_LENGTH} characters"
    if _period(value) <= len(value) // 2:
        return "a repeated pattern"
    if _in_runs(value) > MAX_RUN_SHARE * len(value):
        return "mostly an alphabet or keyboard run"
    rest = normalized
    for word in COMMON_WORDS:
        rest = rest.replace(word, "")
    if rest != normalized and len(re.sub(r"[\W\d_]", "", rest)) < MIN_REMAINDER:
        return "common words with digits"
    if estimated_bits(value) < MIN_BITS:
        return f"too little variety (under {MIN_BITS} bits estimated)"
    return None


if __name__ == "__main__":
    reason = weakness(sys.stdin.read())
    if reason:
        print(reason)
        sys.exit(1)
