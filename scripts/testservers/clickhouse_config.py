"""The private ClickHouse server's configuration: the packaged XML, copied into the folder and made private."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from .common import LOOPBACK, SetupError

CLICKHOUSE_ETC = Path("/etc/clickhouse-server")

# Absolute path prefixes of the packaged ClickHouse config, mapped into our
# folder.  Catching them by prefix (instead of a fixed list of tags) keeps the
# rewrite correct for newer configs that add e.g. access/ or user_scripts/.
CLICKHOUSE_DATA_PREFIX = "/var/lib/clickhouse"
CLICKHOUSE_LOG_PREFIX = "/var/log/clickhouse-server"
# Listeners we do not want: they would need certificates or ports we did not
# reserve, and a clash on any of them makes the server exit.
CLICKHOUSE_UNWANTED_PORTS = (
    "https_port",
    "tcp_port_secure",
    "mysql_port",
    "postgresql_port",
    "grpc_port",
    "interserver_https_port",
    "prometheus",
)

# What keeps clickhouse-server's resident memory flat under a steady stream of
# small inserts (measured with scripts/soak.py, docs/soak.md; the same settings
# are in deploy/clickhouse/memory.xml and deploy/systemd/clickhouse-server.service.d/):
#
# * jemalloc options (MALLOC_CONF: Debian's 18.16 uses the system libjemalloc,
#   which reads it): background threads purge freed pages after 1 s.  Without
#   them a page goes back to the kernel only when its arena allocates again, and
#   with 8 arenas for ~30 threads much of the memory freed after inserts and
#   merges stayed resident (~220 MB against ~147 MB with them, and still rising).
# * old_parts_lifetime 60 s instead of 480: every insert makes a part in events
#   and in each report table (~18 parts/s from the writer), and a merged-away
#   part stays in memory (~14 KB on 18.16) until old_parts_lifetime passes:
#   8,400 of them, +110 MB, for the first 9 minutes of every run.
#
# ADSERVER_TEST_CLICKHOUSE_MALLOC_CONF overrides the jemalloc options (empty:
# jemalloc's defaults), for experiments.
CLICKHOUSE_MALLOC_CONF = "background_thread:true,dirty_decay_ms:1000"
CLICKHOUSE_MERGE_TREE: dict[str, str] = {"old_parts_lifetime": "60"}


def _set_child(parent: ET.Element, tag: str, text: str) -> None:
    """Set ``<tag>text</tag>`` under ``parent``, creating it if absent."""
    node = parent.find(tag)
    if node is None:
        node = ET.SubElement(parent, tag)
    node.text = text


def _remove_children(parent: ET.Element, tag: str) -> None:
    for node in parent.findall(tag):
        parent.remove(node)


def _drop_includes(root: ET.Element) -> None:
    """Make the config self-contained: no substitutions from /etc/metrika.xml.

    An ``incl`` element with nothing of its own (``<zookeeper incl=...
    optional="true"/>``) is removed outright: left empty, ``<zookeeper/>``
    would make the server believe ZooKeeper is configured.
    """
    for parent in root.iter():
        for child in list(parent):
            if "incl" not in child.attrib:
                continue
            if len(child) == 0 and not (child.text or "").strip():
                parent.remove(child)
            else:
                del child.attrib["incl"]
                child.attrib.pop("optional", None)
    _remove_children(root, "include_from")


def _relocate(text: str, data_dir: Path, log_dir: Path) -> str | None:
    """Map a packaged absolute path into our folder (None if not one)."""
    for prefix, target in (
        (CLICKHOUSE_DATA_PREFIX, data_dir),
        (CLICKHOUSE_LOG_PREFIX, log_dir),
    ):
        if text == prefix or text.startswith(prefix + "/"):
            rest = text[len(prefix) :].lstrip("/")
            moved = str(target / rest) if rest else str(target)
            # ClickHouse wants a trailing slash on folder paths.
            return moved + "/" if text.endswith("/") and not moved.endswith("/") else moved
    return None


@dataclass
class ClickHousePorts:
    """The three ports a private server listens on (all picked free at start)."""

    tcp: int
    http: int
    interserver_http: int


def write_clickhouse_config(folder: Path, ports: ClickHousePorts) -> tuple[Path, Path]:
    """Copy the packaged config/users XML into ``folder`` and make them private.

    Copying (rather than writing a config from scratch) keeps the packaged
    defaults the server version expects.  What we change, and why:

    * every data/log path points inside the folder (the data is thrown away,
      and /var/lib/clickhouse may be someone's real data);
    * the three ports are our free ones; TLS/MySQL/... listeners are removed
      (unreserved ports, missing certificates);
    * only 127.0.0.1 is listened on (the machine may have no IPv6, and a
      listen_host that cannot be bound makes ClickHouse exit);
    * timezone is UTC so DateTime results do not depend on the machine;
    * ``CLICKHOUSE_MERGE_TREE`` goes into ``<merge_tree>`` (memory, see there);
    * ``incl`` substitutions are dropped (hermetic, no /etc/metrika.xml);
    * the sample clusters point at our native port, so a Distributed table
      on ``test_shard_localhost`` works in tests;
    * user ``default`` has an empty password and may connect from loopback.

    Because the files live in the folder, the system's config.d/ and users.d/
    are not merged in either.
    """
    source_config, source_users = (
        CLICKHOUSE_ETC / "config.xml",
        CLICKHOUSE_ETC / "users.xml",
    )
    for source in (source_config, source_users):
        if not source.is_file():
            raise SetupError(f"{source} is missing; is the clickhouse-server package installed correctly?")
    data_dir, log_dir = folder / "clickhouse", folder / "clickhouse-log"
    log_dir.mkdir(exist_ok=True)  # the logger does not create its folder
    config_path, users_path = folder / "config.xml", folder / "users.xml"

    tree = ET.parse(source_config)
    root = tree.getroot()
    _drop_includes(root)
    for node in root.iter():
        if node.text and node.text.strip().startswith("/"):
            moved = _relocate(node.text.strip(), data_dir, log_dir)
            if moved is not None:
                node.text = moved
    _set_child(root, "path", f"{data_dir}/")
    _set_child(root, "tmp_path", f"{data_dir}/tmp/")
    _set_child(root, "user_files_path", f"{data_dir}/user_files/")
    _set_child(root, "format_schema_path", f"{data_dir}/format_schemas/")
    logger = root.find("logger")
    if logger is None:
        logger = ET.SubElement(root, "logger")
    _set_child(logger, "log", str(log_dir / "clickhouse-server.log"))
    _set_child(logger, "errorlog", str(log_dir / "clickhouse-server.err.log"))
    _set_child(logger, "level", "information")  # enough to debug a failed start

    _set_child(root, "tcp_port", str(ports.tcp))
    _set_child(root, "http_port", str(ports.http))
    _set_child(root, "interserver_http_port", str(ports.interserver_http))
    for tag in CLICKHOUSE_UNWANTED_PORTS:
        _remove_children(root, tag)
    _remove_children(root, "listen_host")
    _set_child(root, "listen_host", LOOPBACK)
    _set_child(root, "timezone", "UTC")
    merge_tree = root.find("merge_tree")
    if merge_tree is None:
        merge_tree = ET.SubElement(root, "merge_tree")
    for name, value in CLICKHOUSE_MERGE_TREE.items():
        _set_child(merge_tree, name, value)
    _set_child(root, "users_config", str(users_path))

    remote_servers = root.find("remote_servers")
    if remote_servers is not None:
        for cluster in list(remote_servers):
            if any((s.text or "").strip() == "1" for s in cluster.iter("secure")):
                remote_servers.remove(cluster)  # no secure port here
                continue
            for replica in cluster.iter("replica"):
                _set_child(replica, "host", LOOPBACK)
                _set_child(replica, "port", str(ports.tcp))

    ET.indent(tree)
    tree.write(config_path, encoding="utf-8", xml_declaration=True)

    users_tree = ET.parse(source_users)
    users_root = users_tree.getroot()
    _drop_includes(users_root)
    users = users_root.find("users")
    if users is None:
        users = ET.SubElement(users_root, "users")
    default = users.find("default")
    if default is None:
        default = ET.SubElement(users, "default")
        _set_child(default, "profile", "default")
        _set_child(default, "quota", "default")
    for tag in ("password", "password_sha256_hex", "password_double_sha1_hex"):
        _remove_children(default, tag)
    ET.SubElement(default, "password").text = ""
    _remove_children(default, "networks")
    networks = ET.SubElement(default, "networks")
    ET.SubElement(networks, "ip").text = LOOPBACK
    ET.SubElement(networks, "ip").text = "::1"
    ET.indent(users_tree)
    users_tree.write(users_path, encoding="utf-8", xml_declaration=True)
    return config_path, users_path
