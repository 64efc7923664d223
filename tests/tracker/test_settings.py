from __future__ import annotations

import pytest

from tracker.settings import SettingsError, load_settings, parse_clickhouse_url

KEY = "k" * 32


def test_embedded_default_generates_and_keeps_a_secret_key(tmp_path):
    first = load_settings({"ADSERVER_DATA_DIR": str(tmp_path)})
    assert first.embedded and first.redis_url is None and first.clickhouse_url is None
    assert len(first.secret_key) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert load_settings({"ADSERVER_DATA_DIR": str(tmp_path)}).secret_key == first.secret_key


def test_server_mode_requires_a_secret_key(tmp_path):
    env = {"ADSERVER_DATA_DIR": str(tmp_path), "ADSERVER_REDIS_URL": "redis://h:6379/0",
           "ADSERVER_CLICKHOUSE_URL": "clickhouse://h:9000/adserver"}
    with pytest.raises(SettingsError, match="ADSERVER_SECRET_KEY is required"):
        load_settings(env)
    settings = load_settings({**env, "ADSERVER_SECRET_KEY": f"{KEY},{'o' * 32}"})
    assert not settings.embedded
    assert settings.secret_keys == (KEY, "o" * 32)
    assert settings.database == "adserver"
    assert not (tmp_path / "secret_key").exists()


@pytest.mark.parametrize(("name", "value", "message"), [
    ("ADSERVER_REDIS_URL", "http://h:6379", "ADSERVER_REDIS_URL"),
    ("ADSERVER_CLICKHOUSE_URL", "mysql://h/db", "ADSERVER_CLICKHOUSE_URL"),
    ("ADSERVER_CLICKHOUSE_URL", "clickhouse://h:9000/bad-name;DROP", "plain identifier"),
    ("ADSERVER_CLICKHOUSE_URL", "clickhouse://h:notaport/db", "invalid port"),
    ("ADSERVER_SECRET_KEY", "short", "at least 16"),
    ("ADSERVER_REDIS_TIMEOUT", "fast", "ADSERVER_REDIS_TIMEOUT"),
    ("ADSERVER_REDIS_TIMEOUT", "-1", "at least"),
    ("ADSERVER_COOKIE_SECURE", "maybe", "boolean"),
    ("ADSERVER_COOKIE_DOMAIN", "bad domain!", "host name"),
    ("ADSERVER_PUBLIC_URL", "ftp://x", "http"),
    ("ADSERVER_WRITER_NAME", "a b", "ADSERVER_WRITER_NAME"),
])
def test_bad_settings_are_named_in_the_error(tmp_path, name, value, message):
    with pytest.raises(SettingsError, match=message):
        load_settings({"ADSERVER_DATA_DIR": str(tmp_path), "ADSERVER_SECRET_KEY": KEY, name: value})


def test_clickhouse_url_parts():
    url = parse_clickhouse_url("clickhouse://u:p@db.internal:9440/ads?secure=1")
    assert (url.host, url.port, url.database, url.user, url.password, url.secure) == (
        "db.internal", 9440, "ads", "u", "p", True)
    assert parse_clickhouse_url("clickhouse://h").port == 9000
