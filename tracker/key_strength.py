"""Is a secret key good enough to sign what comes back to us (sessions, click links, visitor ids)?

Anyone who knows the key can sign a dashboard session for any marketer, click tokens and visitor
cookies, so a server must not start with a key that can be guessed: a value published in this
repository's documentation or examples, a placeholder (``change-me``, ``secret``, ``xxx``...), a
key made of a few repeated characters, or one with less than :data:`MIN_BITS` of estimated entropy.

The estimate is deliberately simple and errs on the low side for what people type and on the right
side for what ``secrets.token_urlsafe(32)`` makes (about 256 bits; never close to the bar):

- the alphabet is the character classes the key uses (lowercase, uppercase, digits, ``-``/``_`` or
  other symbols), each character costing log2 of its size;
- a character continuing a pattern of three or more (``aaa``, ``123``, ``cba``) costs 1 bit, a
  separator already seen costs 1 bit;
- a run of letters that reads like words (vowels, no long consonant clusters) costs 13 bits per ten
  letters, what a word drawn from a large dictionary carries, and 1 bit if it appeared before (a
  passphrase of a dozen words drawn at random still passes; a sentence of common words may too, which
  no estimate without a dictionary of phrases can tell apart).
"""

from __future__ import annotations

import math
import re

MIN_BITS = 128
WORD_BITS = 13  # log2 of an 8,000-word dictionary
GENERATE = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"

# Values this repository has published as example keys (docs, deploy/adserver.env.example, tests):
# known to anyone who read it. tests/tracker/test_key_strength.py checks every key the docs show is refused.
PUBLISHED = frozenset({
    "change-me-to-a-long-random-string",
    "test-secret-key-0123456789abcdef",
})

# Words that mark a key as a placeholder; the key is refused when what remains without them is weak.
_PLACEHOLDER = re.compile(
    r"change[-_. ]?(?:me|it)|replace[-_. ]?me|secret|example|x{3,}|placeholder|passw(?:or)?d|insecure|dummy|"
    r"default|sample|fixme|todo|test|your[-_. ]?key",
    re.IGNORECASE,
)
_RUNS = re.compile(r"[A-Za-z]+|[0-9]+|[^A-Za-z0-9]+")
_VOWELS = frozenset("aeiouy")
_CONSONANT_CLUSTER = re.compile(r"[b-df-hj-np-tv-xz]{4}")


def _alphabet(key: str) -> int:
    size = 0
    if re.search(r"[a-z]", key):
        size += 26
    if re.search(r"[A-Z]", key):
        size += 26
    if re.search(r"[0-9]", key):
        size += 10
    symbols = set(re.sub(r"[A-Za-z0-9]", "", key))
    if symbols:
        size += 2 if symbols <= {"-", "_"} else 33
    return max(size, 2)


def _wordlike(run: str) -> bool:
    """Letters a person would type as a word: one case (or Capitalised), vowels, pronounceable."""
    if len(run) < 2 or not (run.islower() or run.isupper() or run.istitle()):
        return False
    low = run.lower()
    vowels = sum(c in _VOWELS for c in low)
    return vowels / len(low) >= 0.2 and not _CONSONANT_CLUSTER.search(low)


def _pattern_bits(run: str, per_char: float) -> float:
    """Each character at full price, but 1 bit for the third and later of a repeat or a sequence."""
    bits = 0.0
    for i, char in enumerate(run):
        if i >= 2:
            step = ord(char) - ord(run[i - 1])
            if abs(step) <= 1 and step == ord(run[i - 1]) - ord(run[i - 2]):
                bits += 1
                continue
        bits += per_char
    return bits


def estimate_bits(key: str) -> float:
    """A rough, conservative estimate of the entropy of ``key`` in bits (see the module's docstring)."""
    per_char = math.log2(_alphabet(key))
    bits = 0.0
    separators: set[str] = set()
    words: set[str] = set()
    for match in _RUNS.finditer(key):
        run = match.group()
        if run[0].isalpha():
            full = _pattern_bits(run, per_char)
            if _wordlike(run):
                bits += 1 if run.lower() in words else min(full, WORD_BITS * math.ceil(len(run) / 10))
                words.add(run.lower())
            else:
                bits += full
        elif run[0].isdigit():
            bits += _pattern_bits(run, per_char)
        else:
            for char in run:
                bits += 1 if char in separators else per_char
                separators.add(char)
    return bits


def _period(key: str) -> int:
    """The length of the shortest unit ``key`` repeats (the key's length if it repeats none)."""
    for size in range(1, len(key) // 2 + 1):
        if all(key[i] == key[i - size] for i in range(size, len(key))):
            return size
    return len(key)


def weakness(key: str) -> str | None:
    """Why ``key`` must not sign anything (a phrase to follow "the key is"), or None if it will do.

    The reason never quotes the key itself: it ends up in logs.
    """
    if key.strip().lower() in PUBLISHED:
        return "an example value published in the project's repository"
    if _period(key) < len(key) or len(set(key)) < 6:
        return "made of a few repeated characters"
    found = _PLACEHOLDER.search(key)
    if found and estimate_bits(_PLACEHOLDER.sub("", key)) < MIN_BITS:
        return f"a placeholder (it contains {found.group().lower()!r})"
    bits = estimate_bits(key)
    if bits < MIN_BITS:
        return f"too easy to guess (about {bits:.0f} bits of entropy, at least {MIN_BITS} needed)"
    return None
