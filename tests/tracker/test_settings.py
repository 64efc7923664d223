from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from gunicorn.config import Config

from tracker.settings import VARIABLES, Settings, SettingsError, load_settings, markdown_table, parse_clickhouse_url

KEY = "q8Zr-Tn2vKx_Lm5WjYd0Hs7Pc3Fb9Ga1Ue4Ri6Oo_X"  # strong: server mode refuses guessable keys
OTHER_KEY = "Hv4_nQ0tZr8Kc-2Wm6Yx1Ld9Bs5Pj3Fg7Ae0Tu_Ni4R"
ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "deploy" / "gunicorn.conf.py"


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
    settings = load_settings({**env, "ADSERVER_SECRET_KEY": f"{KEY},{OTHER_KEY}"})
    assert not settings.embedded
    assert settings.secret_keys == (KEY, OTHER_KEY)
    assert settings.database == "adserver"
    assert not (tmp_path / "secret_key").exists()


def test_defaults(tmp_path):
    settings = load_settings({"ADSERVER_DATA_DIR": str(tmp_path)})
    expected = {
        "redis_url": None, "clickhouse_url": None, "clickhouse_cluster": None, "data_dir": tmp_path.resolve(),
        "secret_keys": ((tmp_path / "secret_key").read_text(),), "database": "adserver",
        "model_dir": tmp_path.resolve() / "models", "public_url": None, "cookie_domain": None, "cookie_secure": True,
        "forwarded_allow_ips": (ipaddress.ip_network("127.0.0.1/32"),), "demo": True, "fetch_allow_loopback": False,
        "redis_timeout": 0.25,
        "clickhouse_timeout": 30.0, "profile_size": 50, "profile_ttl_days": 30, "click_ttl_days": 7,
        "new_visitor_ttl_minutes": 60, "spool_max_mb": 1024, "pixel_linger_ms": 2.0,
        "click_limit_visitor": 10, "click_limit_address": 30, "currency": "CNY", "fatigue_free": 3,
        "fatigue_decay": 0.6, "tcf_vendor_id": 0, "stream_key": "adserver:events", "stream_partitions": 1, "writer_name": "writer-1", "writer_lease_seconds": 60.0, "writer_batch_size": 5000,
        "writer_batch_seconds": 1.0, "embedded_writer": True, "forget_interval": 600.0, "writer_crash_at": "", "feed_max_drop": 0.5, "port": 8000,
        "bind": ("127.0.0.1:8000",), "workers": os.cpu_count(), "threads": 8, "max_requests": 0, "access_log": None,
    }
    assert set(expected) == {var.field for var in VARIABLES}  # a new variable needs its default checked here
    assert {field: getattr(settings, field) for field in expected} == expected
    assert settings.forwarded_allow_ips_text == "127.0.0.1"


def test_every_settings_field_comes_from_one_variable():
    fields = [var.field for var in VARIABLES]
    names = [name for var in VARIABLES for name in (var.name, *var.aliases)]
    assert len(set(fields)) == len(fields) and len(set(names)) == len(names)
    variable_fields = {f.name for f in dataclasses.fields(Settings) if f.default is dataclasses.MISSING}
    assert variable_fields == set(fields)


# Every variable and alias, with values it must refuse and a word of the expected message.
BAD_VALUES = [
    ("ADSERVER_REDIS_URL", "http://h:6379", "redis://host"),
    ("ADSERVER_REDIS_URL", "redis://", "no host"),
    ("ADSERVER_REDIS_URL", "redis://[::1/0", "redis://host"),
    ("ADSERVER_REDIS_URL", "redis+cluster://", "no host"),
    ("ADSERVER_REDIS_URL", "redis+cluster://h1:7000,h2", "host:port,host:port"),
    ("ADSERVER_REDIS_URL", "redis+cluster://h1:7000,,h2:7001", "host:port,host:port"),
    ("ADSERVER_REDIS_URL", "redis+cluster://h1:70000", "host:port,host:port"),
    ("ADSERVER_REDIS_URL", "redis+cluster://h1:7000/1", "only database 0"),
    ("ADSERVER_REDIS_URL", "redis+cluster://h1:7000?timeout=1", "host:port,host:port"),
    ("ADSERVER_CLICKHOUSE_URL", "mysql://h/db", "clickhouse://host"),
    ("ADSERVER_CLICKHOUSE_URL", "clickhouse://h:9000/bad-name;DROP", "plain identifier"),
    ("ADSERVER_CLICKHOUSE_URL", "clickhouse://h:notaport/db", "invalid port"),
    ("ADSERVER_CLICKHOUSE_URL", "clickhouse:///db", "no host"),
    ("ADSERVER_CLICKHOUSE_URL", "clickhouse://,h2:9000/db", "no host"),
    ("ADSERVER_CLICKHOUSE_URL", "clickhouse://h1:9000,/db", "host:port,host:port"),
    ("ADSERVER_CLICKHOUSE_URL", "clickhouse://h1:9000,,h2:9000/db", "host:port,host:port"),
    ("ADSERVER_CLICKHOUSE_URL", "clickhouse://h1:9000,h2:90000/db", "host:port,host:port"),
    ("ADSERVER_CLICKHOUSE_URL", "clickhouse://h1:9000,h2:0/db", "host:port,host:port"),
    ("ADSERVER_CLICKHOUSE_URL", "clickhouse://h1:9000,h2:port/db", "host:port,host:port"),
    ("ADSERVER_CLICKHOUSE_URL", "clickhouse://h1:9000,h2;DROP/db", "host:port,host:port"),
    ("ADSERVER_CLICKHOUSE_URL", "clickhouse://h1:9000,[::1:9000/db", "clickhouse://host"),
    ("ADSERVER_CLICKHOUSE_URL", "clickhouse://[::1/db", "clickhouse://host"),
    ("ADSERVER_CLICKHOUSE_URL", "clickhouse://h1:9000,h2:9000,h1/db", "twice"),
    ("ADSERVER_CLICKHOUSE_URL", "clickhouse://h1:99999,h2:9000/db", "invalid port"),
    ("ADSERVER_CLICKHOUSE_CLUSTER", "ads cluster", "plain identifier"),
    ("ADSERVER_CLICKHOUSE_CLUSTER", "c1' ON CLUSTER x", "plain identifier"),
    ("ADSERVER_CLICKHOUSE_CLUSTER", "adserver_cluster", "needs ADSERVER_CLICKHOUSE_URL"),
    ("ADSERVER_DATA_DIR", "{file}", "directory"),
    ("ADSERVER_SECRET_KEY", "short", "at least 16"),
    ("ADSERVER_SECRET_KEY", f"{KEY},short", "at least 16"),
    ("ADSERVER_DATABASE", "bad-name", "plain identifier"),
    ("ADSERVER_MODEL_DIR", "{file}", "directory"),
    ("ADSERVER_PUBLIC_URL", "ftp://x", "http"),
    ("ADSERVER_PUBLIC_URL", "https://", "http"),
    ("ADSERVER_COOKIE_DOMAIN", "bad domain!", "host name"),
    ("ADSERVER_COOKIE_SECURE", "maybe", "boolean"),
    ("ADSERVER_FORWARDED_ALLOW_IPS", "10.0.0.0/8", "addresses"),
    ("ADSERVER_FORWARDED_ALLOW_IPS", "127.0.0.1,proxy.local", "proxy.local"),
    ("ADSERVER_DEMO", "maybe", "boolean"),
    ("ADSERVER_FETCH_ALLOW_LOOPBACK", "maybe", "boolean"),
    ("ADSERVER_REDIS_TIMEOUT", "fast", "number"),
    ("ADSERVER_REDIS_TIMEOUT", "-1", "at least 0.01"),
    ("ADSERVER_REDIS_TIMEOUT", "nan", "finite"),
    ("ADSERVER_REDIS_TIMEOUT", "inf", "finite"),
    ("ADSERVER_CLICKHOUSE_TIMEOUT", "0.05", "at least 0.1"),
    ("ADSERVER_PROFILE_SIZE", "many", "integer"),
    ("ADSERVER_PROFILE_SIZE", "0", "at least 1"),
    ("ADSERVER_PROFILE_SIZE", "1001", "at most 1000"),
    ("ADSERVER_NEW_VISITOR_TTL_MINUTES", "0", "at least 1"),
    ("ADSERVER_NEW_VISITOR_TTL_MINUTES", "1441", "at most 1440"),
    ("ADSERVER_SPOOL_MAX_MB", "0", "at least 1"),
    ("ADSERVER_SPOOL_MAX_MB", "1e3", "integer"),
    ("ADSERVER_PIXEL_LINGER_MS", "-1", "at least 0"),
    ("ADSERVER_PIXEL_LINGER_MS", "1000", "at most 100"),
    ("ADSERVER_PIXEL_LINGER_MS", "soon", "number"),
    ("ADSERVER_PROFILE_TTL_DAYS", "1.5", "integer"),
    ("ADSERVER_CLICK_TTL_DAYS", "0", "at least 1"),
    ("ADSERVER_CLICK_LIMIT_VISITOR", "0", "at least 1"),
    ("ADSERVER_CLICK_LIMIT_ADDRESS", "-1", "at least 1"),
    ("ADSERVER_CURRENCY", "usd", "ISO 4217"),
    ("ADSERVER_CURRENCY", "XXXX", "ISO 4217"),
    ("ADSERVER_FATIGUE_FREE", "-1", "at least 0"),
    ("ADSERVER_FATIGUE_DECAY", "1.5", "at most 1"),
    ("ADSERVER_FATIGUE_DECAY", "-0.1", "at least 0"),
    ("ADSERVER_FEED_MAX_DROP", "1.5", "at most 1"),
    ("ADSERVER_FEED_MAX_DROP", "half", "number"),
    ("ADSERVER_TCF_VENDOR_ID", "-1", "at least 0"),
    ("ADSERVER_TCF_VENDOR_ID", "65536", "at most 65535"),
    ("ADSERVER_TCF_VENDOR_ID", "iab-755", "integer"),
    ("ADSERVER_STREAM_KEY", "two words", "printable"),
    ("ADSERVER_STREAM_PARTITIONS", "0", "at least 1"),
    ("ADSERVER_STREAM_PARTITIONS", "1025", "at most 1024"),
    ("ADSERVER_STREAM_PARTITIONS", "four", "integer"),
    ("ADSERVER_WRITER_NAME", "a b", "letters"),
    ("ADSERVER_WRITER_NAME", "w" * 65, "1-64"),
    ("ADSERVER_WRITER_LEASE_SECONDS", "59", "at least twice ADSERVER_CLICKHOUSE_TIMEOUT (30 s)"),
    ("ADSERVER_WRITER_LEASE_SECONDS", "-1", "at least twice"),
    ("ADSERVER_WRITER_LEASE_SECONDS", "later", "must be a number"),
    ("ADSERVER_WRITER_LEASE_SECONDS", "inf", "finite"),
    ("ADSERVER_WRITER_BATCH_SIZE", "0", "at least 1"),
    ("ADSERVER_WRITER_BATCH_SECONDS", "0", "at least 0.01"),
    ("ADSERVER_EMBEDDED_WRITER", "sometimes", "boolean"),
    ("ADSERVER_FORGET_INTERVAL", "0", "at least 1"),
    ("ADSERVER_FORGET_INTERVAL", "100000", "at most 86400"),
    ("ADSERVER_FORGET_INTERVAL", "soon", "number"),
    ("ADSERVER_WRITER_CRASH_AT", "during_insert", "before_insert"),
    ("ADSERVER_PORT", "http", "integer"),
    ("ADSERVER_PORT", "0", "at least 1"),
    ("ADSERVER_PORT", "65536", "at most 65535"),
    ("PORT", "abc", "integer"),
    ("ADSERVER_BIND", "0.0.0.0", "host:port"),
    ("ADSERVER_BIND", "127.0.0.1:99999", "host:port"),
    ("ADSERVER_BIND", "127.0.0.1:8000,localhost", "'localhost'"),
    ("ADSERVER_WORKERS", "two", "integer"),
    ("ADSERVER_WORKERS", "0", "at least 1"),
    ("ADSERVER_THREADS", "0", "at least 1"),
    ("ADSERVER_MAX_REQUESTS", "-1", "at least 0"),
    ("ADSERVER_ACCESS_LOG", "/nonexistent-directory/access.log", "existing directory"),
]


@pytest.mark.parametrize(("name", "value", "message"), BAD_VALUES)
def test_bad_values_are_refused_with_a_message_naming_the_variable(tmp_path, name, value, message):
    (tmp_path / "file").write_text("")
    env = {"ADSERVER_DATA_DIR": str(tmp_path / "var"), "ADSERVER_SECRET_KEY": KEY,
           name: value.format(file=tmp_path / "file")}
    with pytest.raises(SettingsError) as refused:
        load_settings(env)
    assert str(refused.value).startswith(name), str(refused.value)
    assert message in str(refused.value)


def test_a_stream_key_whose_braces_partitions_cannot_carry_is_refused_at_start_up(tmp_path):
    env = {"ADSERVER_DATA_DIR": str(tmp_path), "ADSERVER_SECRET_KEY": KEY}
    one = {**env, "ADSERVER_STREAM_KEY": "ads:{events}", "ADSERVER_STREAM_PARTITIONS": "1"}
    assert load_settings(one).stream_key == "ads:{events}"  # one partition: the key's own tag is its slot
    with pytest.raises(SettingsError, match="^ADSERVER_STREAM_PARTITIONS=4 with ADSERVER_STREAM_KEY.*braces"):
        load_settings({**one, "ADSERVER_STREAM_PARTITIONS": "4"})
    with pytest.raises(SettingsError, match="^ADSERVER_STREAM_PARTITIONS=1 with ADSERVER_STREAM_KEY.*'}'"):
        load_settings({**env, "ADSERVER_STREAM_KEY": "ads:events}"})


def test_every_variable_has_bad_values_checked():
    checked = {name for name, _, _ in BAD_VALUES}
    assert [name for var in VARIABLES for name in (var.name, *var.aliases) if name not in checked] == []


@pytest.mark.parametrize("var", [var for var in VARIABLES if var.minimum is not None or var.maximum is not None],
                         ids=lambda var: var.name)
def test_declared_bounds_are_inclusive_and_enforced(tmp_path, var):
    env = {"ADSERVER_DATA_DIR": str(tmp_path), "ADSERVER_SECRET_KEY": KEY}
    step = 1 if var.parse.__name__ in ("integer", "workers", "stream_partitions") else 0.001
    for bound, outside in ((var.minimum, -step), (var.maximum, step)):
        if bound is None:
            continue
        text = str(int(bound) if step == 1 else bound)
        assert getattr(load_settings({**env, var.name: text}), var.field) == bound
        with pytest.raises(SettingsError, match=var.name):
            load_settings({**env, var.name: str(bound + outside)})


def test_the_database_follows_the_clickhouse_url(tmp_path):
    env = {"ADSERVER_DATA_DIR": str(tmp_path), "ADSERVER_SECRET_KEY": KEY}
    assert load_settings({**env, "ADSERVER_DATABASE": "mine"}).database == "mine"
    url = {**env, "ADSERVER_CLICKHOUSE_URL": "clickhouse://h/ads"}
    assert load_settings(url).database == "ads"
    assert load_settings({**url, "ADSERVER_DATABASE": "ads"}).database == "ads"
    with pytest.raises(SettingsError, match="ADSERVER_DATABASE is 'other' but ADSERVER_CLICKHOUSE_URL names"):
        load_settings({**url, "ADSERVER_DATABASE": "other"})


def test_directories_and_web_server_values(tmp_path):
    settings = load_settings({
        "ADSERVER_DATA_DIR": str(tmp_path), "ADSERVER_MODEL_DIR": str(tmp_path / "shared"),
        "ADSERVER_BIND": "0.0.0.0:8080, [::1]:8080,unix:/run/adserver.sock", "ADSERVER_WORKERS": "3",
        "ADSERVER_ACCESS_LOG": str(tmp_path / "access.log"), "ADSERVER_FORWARDED_ALLOW_IPS": "10.0.0.1, ::1",
        "ADSERVER_PUBLIC_URL": "https://ads.example.com/", "ADSERVER_COOKIE_SECURE": "off",
    })
    assert settings.model_dir == tmp_path.resolve() / "shared"
    assert settings.bind == ("0.0.0.0:8080", "[::1]:8080", "unix:/run/adserver.sock")
    assert (settings.workers, settings.port, settings.access_log) == (3, 8000, str(tmp_path / "access.log"))
    assert settings.forwarded_allow_ips_text == "10.0.0.1,::1"
    assert ipaddress.ip_address("::1") in settings.forwarded_allow_ips[1]
    assert (settings.public_url, settings.cookie_secure) == ("https://ads.example.com", False)
    anyone = load_settings({"ADSERVER_DATA_DIR": str(tmp_path), "ADSERVER_FORWARDED_ALLOW_IPS": "*"})
    assert (anyone.forwarded_allow_ips, anyone.forwarded_allow_ips_text) == (("*",), "*")


def test_port_is_the_conventional_alias(tmp_path):
    env = {"ADSERVER_DATA_DIR": str(tmp_path)}
    alias = load_settings({**env, "PORT": "9000"})
    assert (alias.port, alias.bind) == (9000, ("127.0.0.1:9000",))
    assert load_settings({**env, "PORT": "9000", "ADSERVER_PORT": "9001"}).port == 9001
    assert load_settings({**env, "PORT": "9000", "ADSERVER_PORT": ""}).port == 9000
    with pytest.raises(SettingsError, match="^ADSERVER_PORT must be an integer"):
        load_settings({**env, "PORT": "9000", "ADSERVER_PORT": "x"})


def test_unknown_variables_are_refused_with_the_closest_known_name(tmp_path):
    env = {"ADSERVER_DATA_DIR": str(tmp_path)}
    with pytest.raises(SettingsError) as refused:
        load_settings({**env, "ADSERVER_REDIS_ULR": "redis://h:6379/0"})
    assert str(refused.value).startswith("unknown setting ADSERVER_REDIS_ULR (did you mean ADSERVER_REDIS_URL?)")
    with pytest.raises(SettingsError) as refused:
        load_settings({**env, "ADSERVER_WORKRES": "2", "ADSERVER_XYZZY": "1"})
    message = str(refused.value)
    assert "ADSERVER_WORKRES (did you mean ADSERVER_WORKERS?)" in message
    assert re.search(r"ADSERVER_XYZZY(?! \()", message), message


def test_the_tools_variables_are_not_settings(tmp_path, monkeypatch):
    tools = {"ADSERVER_TEST_REDIS_URL": "redis://h:1/0", "ADSERVER_TEST_ANYTHING": "x",
             "ADSERVER_BENCH_DIR": "/tmp/b", "ADSERVER_SOAK_DIR": "/tmp/s", "REDIS_URL": "ignored"}
    settings = load_settings({"ADSERVER_DATA_DIR": str(tmp_path), **tools})
    assert settings.redis_url is None
    # os.environ, as the server reads it: the test harness's own ADSERVER_TEST_* variables are there too
    for name, value in {**tools, "ADSERVER_DATA_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    assert load_settings().data_dir == tmp_path.resolve()
    monkeypatch.setenv("ADSERVER_THREDS", "4")
    with pytest.raises(SettingsError, match=r"ADSERVER_THREDS \(did you mean ADSERVER_THREADS\?\)"):
        load_settings()


def test_clickhouse_url_parts():
    url = parse_clickhouse_url("clickhouse://u:p@db.internal:9440/ads?secure=1")
    assert (url.host, url.port, url.database, url.user, url.password, url.secure) == (
        "db.internal", 9440, "ads", "u", "p", True)
    assert parse_clickhouse_url("clickhouse://h").port == 9000
    assert parse_clickhouse_url("clickhouse://h").alt_hosts == ()


def test_a_clickhouse_url_may_name_several_nodes_the_first_tried_first():
    url = parse_clickhouse_url("clickhouse://u:p,w@h1:9001,h2,[::1]:9003/ads")
    assert (url.host, url.port, url.database, url.user, url.password) == ("h1", 9001, "ads", "u", "p,w")
    assert url.alt_hosts == (("h2", 9000), ("::1", 9003))  # a node without a port takes the default
    assert url.hosts == (("h1", 9001), ("h2", 9000), ("::1", 9003))
    assert parse_clickhouse_url("clickhouses://h1,h2/ads").alt_hosts == (("h2", 9440),)
    one = url.node("h2", 9000)  # one node of them, without failover: a client that must read that node
    assert (one.host, one.port, one.alt_hosts, one.user, one.database) == ("h2", 9000, (), "u", "ads")


# --- The README's table and the example environment file --------------------------------------------

def readme_table() -> tuple[str, dict[str, str]]:
    """The README's table of variables, and each variable's default as the table gives it."""
    text = (ROOT / "README.md").read_text()
    start = text.index("| variable | default | meaning |")
    lines = []
    for line in text[start:].splitlines():
        if not line.startswith("|"):
            break
        lines.append(line)
    defaults = {}
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", cells[0]):
            defaults[name] = cells[1]
    return "\n".join(lines) + "\n", defaults


def test_the_readme_lists_every_variable_with_its_default():
    table, defaults = readme_table()
    declared = {var.name: var.readme_default for var in VARIABLES}
    assert sorted(set(declared) - set(defaults)) == [], "variables missing from README.md"
    assert sorted(set(defaults) - set(declared)) == [], "README.md lists variables that are not declared"
    assert {name: defaults[name] for name in declared if defaults[name] != declared[name]} == {}
    # regenerate with: python -c 'from tracker.settings import markdown_table; print(markdown_table())'
    assert table == markdown_table()


def test_the_example_environment_file_is_complete_and_valid(tmp_path):
    lines = (ROOT / "deploy" / "adserver.env.example").read_text().splitlines()
    assignments = [re.fullmatch(r"(#?)([A-Z][A-Z0-9_]*)=(.*)", line) for line in lines]
    assignments = [m.groups() for m in assignments if m]
    names = [name for _, name, _ in assignments]
    assert sorted(names) == sorted(var.name for var in VARIABLES)
    literal = {var.name: var.default for var in VARIABLES if not var.shown_default}
    assert {name: value for _, name, value in assignments if name in literal and value != literal[name]} == {}
    active = {name: value for commented, name, value in assignments if not commented}
    key = {"ADSERVER_SECRET_KEY": KEY}  # the file ships none (tests/tracker/test_key_strength.py)
    assert load_settings({**active, **key}).cookie_domain == "ads.example.com"
    everything = {name: value for _, name, value in assignments}
    assert load_settings({**everything, **key, "ADSERVER_DATA_DIR": str(tmp_path)}).workers == 4


def test_compose_trusts_only_its_gateway_and_requires_the_public_url(tmp_path):
    """The web container sees nginx's connections (from the host) come from the bridge network's
    gateway: that address alone may set X-Forwarded-*, not the other containers, nor anyone if the port
    gets published more widely. Click links are built on ADSERVER_PUBLIC_URL, never on a Host header."""
    text = (ROOT / "deploy" / "compose.yaml").read_text()
    trusted = re.findall(r"^\s+ADSERVER_FORWARDED_ALLOW_IPS:\s*\"?([^\"\s]+)\"?\s*$", text, re.MULTILINE)
    subnet = re.search(r"^\s+- subnet:\s*(\S+)$", text, re.MULTILINE)
    gateway = re.search(r"^\s+gateway:\s*(\S+)$", text, re.MULTILINE)
    assert subnet and gateway and trusted == [gateway.group(1)]
    assert ipaddress.ip_address(gateway.group(1)) in ipaddress.ip_network(subnet.group(1))
    settings = load_settings({"ADSERVER_DATA_DIR": str(tmp_path), "ADSERVER_FORWARDED_ALLOW_IPS": trusted[0]})
    assert settings.forwarded_allow_ips_text == gateway.group(1)
    assert re.search(r"^\s+ADSERVER_PUBLIC_URL: \$\{ADSERVER_PUBLIC_URL:\?[^}]+\}$", text, re.MULTILINE)
    assert "ADSERVER_PUBLIC_URL:-" not in text


# --- deploy/gunicorn.conf.py ------------------------------------------------------------------------

@pytest.fixture
def server_env(monkeypatch, tmp_path):
    """os.environ without any setting of the developer's, and a data directory of the test's own."""
    for name in list(os.environ):
        if name == "PORT" or (name.startswith("ADSERVER_") and not name.startswith("ADSERVER_TEST_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ADSERVER_DATA_DIR", str(tmp_path))
    return monkeypatch


def gunicorn_config(conf: dict) -> Config:
    cfg = Config()
    for name, value in conf.items():
        if name in cfg.settings:
            cfg.set(name, value)
    return cfg


def test_gunicorn_conf_takes_the_settings(server_env, tmp_path):
    for name, value in {"ADSERVER_BIND": "0.0.0.0:9000,unix:/run/ads.sock", "ADSERVER_WORKERS": "3",
                        "ADSERVER_THREADS": "4", "ADSERVER_MAX_REQUESTS": "1000", "ADSERVER_ACCESS_LOG": "-",
                        "ADSERVER_FORWARDED_ALLOW_IPS": "10.0.0.1, ::1"}.items():
        server_env.setenv(name, value)
    cfg = gunicorn_config(runpy.run_path(str(CONF)))
    assert cfg.bind == ["0.0.0.0:9000", "unix:/run/ads.sock"]
    assert (cfg.workers, cfg.threads, cfg.max_requests, cfg.max_requests_jitter) == (3, 4, 1000, 100)
    assert cfg.forwarded_allow_ips == ["10.0.0.1", "::1"]
    assert cfg.accesslog == "-"


def test_gunicorn_conf_defaults(server_env):
    cfg = gunicorn_config(runpy.run_path(str(CONF)))
    assert (cfg.bind, cfg.workers, cfg.threads, cfg.max_requests) == (["127.0.0.1:8000"], os.cpu_count(), 8, 0)
    assert (cfg.forwarded_allow_ips, cfg.accesslog) == (["127.0.0.1"], None)
    server_env.setenv("PORT", "9100")
    assert gunicorn_config(runpy.run_path(str(CONF))).bind == ["127.0.0.1:9100"]


def test_gunicorn_refuses_to_start_on_a_bad_setting(server_env):
    server_env.setenv("ADSERVER_THREADS", "0")
    with pytest.raises(SystemExit, match="^invalid settings: ADSERVER_THREADS must be at least 1, got '0'$"):
        runpy.run_path(str(CONF))
    server_env.setenv("ADSERVER_THREADS", "8")
    server_env.setenv("ADSERVER_WORKRES", "2")
    result = subprocess.run([sys.executable, "-m", "gunicorn", "-c", str(CONF), "--check-config",
                             "adserver:create_app()"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "invalid settings: unknown setting ADSERVER_WORKRES (did you mean ADSERVER_WORKERS?)" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr
