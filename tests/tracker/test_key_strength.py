"""A server does not start with a secret key that can be guessed (tracker/key_strength.py).

Whoever knows the key signs dashboard sessions for any marketer, click tokens and visitor cookies:
the end-to-end attack with the key the repository once shipped is in
tests/adserver/console/test_sessions.py.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest

from tracker.key_strength import PUBLISHED, estimate_bits, weakness
from tracker.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]
# The value deploy/adserver.env.example shipped, which deployments copied.
OLD_EXAMPLE = "change-me-to-a-long-random-string"
STRONG = "Vq3-8Jd_x2LkPz0wRt9mYc4sHn7bGf1aEu6oTi5lWe_"


def server_env(tmp_path: Path, key: str) -> dict[str, str]:
    return {"ADSERVER_DATA_DIR": str(tmp_path), "ADSERVER_REDIS_URL": "redis://h:6379/0",
            "ADSERVER_CLICKHOUSE_URL": "clickhouse://h:9000/adserver", "ADSERVER_SECRET_KEY": key}


# (key, a word of the reason): each must stop a server from starting.
REFUSED = [
    (OLD_EXAMPLE, "published"),
    ("test-secret-key-0123456789abcdef", "published"),  # the test suite's former key
    ("k" * 32, "repeated"),
    ("abcabcabcabcabcabcabcabcabcabcab", "repeated"),
    ("aaaaaaaaaaaaaaaaaaaaaaaabbbbbbbbbb", "repeated"),
    ("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "repeated"),
    ("change-me-please-to-something-long", "'change-me'"),
    ("CHANGEME_CHANGEME_NOW_1234567890", "'changeme'"),
    ("my-super-secret-key-for-the-adserver", "'secret'"),
    ("an-example-key-of-forty-characters-long", "'example'"),
    ("xxx-production-xxx-key-00000000000", "'xxx'"),
    ("insecure-development-key-only-local", "'insecure'"),
    ("abcdefghijklmnopqrstuvwxyz0123456789", "bits of entropy"),
    ("adserver-production-signing-key-2024-v2", "bits of entropy"),
    ("correct horse battery staple", "bits of entropy"),
    ("Tr0ub4dor&3Tr0ub4dor&3", "repeated"),
]


@pytest.mark.parametrize(("key", "reason"), REFUSED)
def test_server_mode_refuses_a_guessable_key_naming_the_variable(tmp_path, key, reason):
    with pytest.raises(SettingsError) as refused:
        load_settings(server_env(tmp_path, key))
    message = str(refused.value)
    assert message.startswith("ADSERVER_SECRET_KEY"), message
    assert reason in message, message
    assert "secrets.token_urlsafe(32)" in message  # how to make a good one
    assert key not in message  # keys do not go into logs


def test_every_key_of_a_rotation_is_checked(tmp_path):
    """An old key still verifies: a weak one there signs sessions as well as the newest."""
    with pytest.raises(SettingsError, match=r"^ADSERVER_SECRET_KEY \(key 2 of 2\) is an example value"):
        load_settings(server_env(tmp_path, f"{STRONG},{OLD_EXAMPLE}"))
    keys = (STRONG, secrets.token_urlsafe(32))
    assert load_settings(server_env(tmp_path, ",".join(keys))).secret_keys == keys


def test_generated_keys_pass_with_a_wide_margin(tmp_path):
    """What the docs tell operators to run is never near the bar (about 256 bits; the estimate errs low)."""
    keys = [secrets.token_urlsafe(32) for _ in range(2000)]
    assert min(estimate_bits(k) for k in keys) > 160
    assert [k for k in keys if weakness(k)] == []
    assert all(weakness(k) is None for k in (secrets.token_hex(32), STRONG))
    assert load_settings(server_env(tmp_path, keys[0])).secret_key == keys[0]


def test_a_key_that_only_contains_a_placeholder_word_by_chance_is_kept():
    """``xxx`` or ``test`` inside a long random key do not make it guessable."""
    assert weakness("xxx" + STRONG) is None
    assert weakness(STRONG + "-test") is None


def test_the_estimate_counts_patterns_words_and_alphabets():
    assert estimate_bits("0123456789") < 20 < estimate_bits("5039182746")
    assert estimate_bits("ribbon-ladder") < estimate_bits("rbdnlr-qzkxvw")
    assert estimate_bits("a1b2c3d4") < estimate_bits("a1B2c3D4") < estimate_bits("a1B2c3D4!")


def test_the_key_embedded_mode_generates_is_strong(tmp_path):
    generated = load_settings({"ADSERVER_DATA_DIR": str(tmp_path)})
    assert generated.embedded and weakness(generated.secret_key) is None


def _keys_in(text: str) -> list[str]:
    """Literal values given to ``ADSERVER_SECRET_KEY`` (not ``$(...)``, ``${...}`` or ``<...>``)."""
    values = re.findall(r"ADSERVER_SECRET_KEY[ \t]*[=:][ \t]*['\"]?([^\s'\"]+)", text)
    return [value for value in values if not value.startswith(("$", "<", "{"))]


def _documented_keys() -> dict[str, str]:
    """Literal ``ADSERVER_SECRET_KEY`` values in the docs, the deploy files and the README."""
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "deploy").rglob("*"))]
    return {key: str(path.relative_to(ROOT)) for path in files if path.is_file() and "__pycache__" not in path.parts
            for key in _keys_in(path.read_text(errors="replace"))}


def test_no_key_the_repository_documents_would_start_a_server(tmp_path):
    assert _keys_in(f"ADSERVER_SECRET_KEY={OLD_EXAMPLE}\n  ADSERVER_SECRET_KEY: 'abc'\nADSERVER_SECRET_KEY=\n#x") == [
        OLD_EXAMPLE, "abc"]
    assert _keys_in("ADSERVER_SECRET_KEY=$(python3 -c ...)\nADSERVER_SECRET_KEY: ${ADSERVER_SECRET_KEY:?set}") == []
    for key, source in _documented_keys().items():
        with pytest.raises(SettingsError, match="^ADSERVER_SECRET_KEY"):
            load_settings(server_env(tmp_path, key))
        assert weakness(key) is not None, source
    assert all(weakness(key) for key in PUBLISHED)


def test_the_example_environment_file_ships_no_usable_key(tmp_path):
    text = (ROOT / "deploy" / "adserver.env.example").read_text()
    assert re.search(r"^ADSERVER_SECRET_KEY=$", text, re.MULTILINE)
    assert "secrets.token_urlsafe(32)" in text
    active = dict(re.findall(r"^([A-Z][A-Z0-9_]*)=(.*)$", text, re.MULTILINE))
    with pytest.raises(SettingsError, match="^ADSERVER_SECRET_KEY is required"):
        load_settings({**active, "ADSERVER_DATA_DIR": str(tmp_path)})
