"""The cluster's deploy files (deploy/cluster/) and how the test servers render them: the example the
operators install is the configuration the cluster tests run, so it cannot rot unnoticed."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from scripts.testservers import clickhouse_cluster as chc
from scripts.testservers import redis_cluster as rc
from scripts.testservers.common import SetupError
from scripts.testservers.zookeeper import ZOO_CFG, render_zoo_cfg
from tracker.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "deploy" / "cluster"
KEY = "q8Zr-Tn2vKx_Lm5WjYd0Hs7Pc3Fb9Ga1Ue4Ri6Oo_X"


def test_the_clickhouse_example_declares_two_shards_of_two_replicas():
    layout = chc.read_layout()
    assert layout.name == "adserver_cluster"
    assert [len(replicas) for replicas in layout.shards] == [2, 2]
    root = ET.parse(chc.CLUSTER_XML).getroot()
    assert root.find("remote_servers").get("replace") == "replace"  # not merged with the packaged samples
    # internal_replication: a Distributed insert writes one replica and replication copies it
    cluster = root.find(f"remote_servers/{layout.name}")
    assert [s.findtext("internal_replication") for s in cluster.findall("shard")] == ["true", "true"]
    assert {e.get("from_env") for e in root.find("macros")} == {"CLICKHOUSE_SHARD", "CLICKHOUSE_REPLICA"}
    assert layout.node_env("ch-2-1")["CLICKHOUSE_SHARD"] == "2"


def test_rendering_for_loopback_changes_only_hosts_and_ports():
    layout = chc.read_layout()
    ports = {host: 40000 + n for n, host in enumerate(layout.hosts)}
    rendered = ET.fromstring(chc.render_cluster_xml(chc.CLUSTER_XML, ports, 2999))
    replicas = list(rendered.find(f"remote_servers/{layout.name}").iter("replica"))
    assert [(r.findtext("host"), int(r.findtext("port"))) for r in replicas] == [
        ("127.0.0.1", ports[host]) for host in layout.hosts]
    assert (rendered.findtext("zookeeper/node/host"), rendered.findtext("zookeeper/node/port")) == ("127.0.0.1", "2999")

    def without_addresses(root: ET.Element) -> list[tuple[str, str, dict]]:
        return [(e.tag, (e.text or "").strip(), e.attrib) for e in root.iter()
                if e.tag not in ("host", "port") and isinstance(e.tag, str)]

    assert without_addresses(rendered) == without_addresses(ET.parse(chc.CLUSTER_XML).getroot())


def test_a_cluster_file_the_test_servers_cannot_run_is_refused(tmp_path):
    text = chc.CLUSTER_XML.read_text()
    broken = tmp_path / "cluster.xml"
    broken.write_text(text.replace("<host>ch-1-2</host>", "<host>ch-1-1</host>"))
    with pytest.raises(SetupError, match="a <host> of its own"):
        chc.read_layout(broken)
    broken.write_text(re.sub(r"<zookeeper>.*?</zookeeper>", "", text, flags=re.DOTALL))
    with pytest.raises(SetupError, match="zookeeper"):
        chc.read_layout(broken)
    broken.write_text(text.replace("adserver_cluster>", "ads-cluster>"))
    with pytest.raises(SetupError, match="plain identifier"):
        chc.read_layout(broken)


def test_zoo_cfg_is_rendered_with_our_folder_and_port_only(tmp_path):
    rendered = render_zoo_cfg(ZOO_CFG, tmp_path / "data", 2999).splitlines()
    original = ZOO_CFG.read_text().splitlines()
    settings = dict(line.split("=", 1) for line in rendered if "=" in line and not line.startswith("#"))
    assert settings["dataDir"] == str(tmp_path / "data")
    assert (settings["clientPort"], settings["clientPortAddress"]) == ("2999", "127.0.0.1")
    assert settings["admin.enableServer"] == "false"
    assert "ruok" in settings["4lw.commands.whitelist"].split(",")  # the test servers' health check
    changed = [line for line in original if line not in rendered]
    assert [line.split("=")[0] for line in changed] == ["dataDir", "clientPort"]
    no_port = tmp_path / "zoo.cfg"
    no_port.write_text(ZOO_CFG.read_text().replace("clientPort=", "#clientPort="))
    with pytest.raises(SetupError, match="clientPort"):
        render_zoo_cfg(no_port, tmp_path, 1)


def test_redis_nodes_run_the_deploy_files_with_addresses_overridden(tmp_path):
    cmd = rc.redis_node_command("redis-server", tmp_path, 7001, 17001)
    assert cmd[1:4] == [str(rc.REDIS_CONF), "--include", str(rc.CLUSTER_CONF)]
    assert "cluster-enabled yes" in rc.CLUSTER_CONF.read_text()
    options = dict(zip(cmd[4::2], cmd[5::2]))
    assert options["--port"] == "7001" and options["--cluster-port"] == "17001"
    assert options["--dir"] == str(tmp_path) and options["--appendonly"] == "no"


# --- compose.yaml ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((CLUSTER / "compose.yaml").read_text())


def mounts(service: dict) -> dict[str, Path]:
    """Container path -> the file of the checkout mounted there."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            found[target] = (CLUSTER / source).resolve()
    return found


def test_compose_runs_the_files_the_test_servers_render(compose):
    services = compose["services"]
    layout = chc.read_layout()
    clickhouse = sorted(name for name in services if name.startswith("ch-"))
    assert clickhouse == sorted(layout.hosts)
    for host in layout.hosts:
        service = services[host]
        files = set(mounts(service).values())
        assert files == {chc.CLUSTER_XML, chc.MEMORY_XML}
        assert all(target.startswith("/etc/clickhouse-server/config.d/") for target in mounts(service))
        env = service["environment"]
        expected = layout.node_env(host)
        assert (env["CLICKHOUSE_SHARD"], env["CLICKHOUSE_REPLICA"]) == (expected["CLICKHOUSE_SHARD"], host)
        assert env["CLICKHOUSE_INTERSERVER_HOST"] == service["hostname"] == host
        assert {"CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD"} <= set(env)  # the account between the nodes

    zookeeper = services["zookeeper"]
    assert mounts(zookeeper) == {"/conf/zoo.cfg": ZOO_CFG}
    assert "-Xmx256m" in zookeeper["environment"]["JVMFLAGS"]
    data_dir = next(line.split("=", 1)[1] for line in ZOO_CFG.read_text().splitlines() if line.startswith("dataDir="))
    assert any(volume.endswith(f":{data_dir}") for volume in zookeeper["volumes"])

    redis = sorted(name for name in services if re.fullmatch(r"redis-\d+", name))
    assert len(redis) == rc.NODES
    for name in redis:
        files = mounts(services[name])
        assert set(files.values()) == {rc.REDIS_CONF, rc.CLUSTER_CONF}
        command = services[name]["command"]
        assert command[1:] == [next(t for t, f in files.items() if f == rc.REDIS_CONF), "--include",
                               next(t for t, f in files.items() if f == rc.CLUSTER_CONF)]
    create = " ".join(services["redis-cluster-init"]["command"])
    assert "--cluster-replicas 1" in create and "for n in 1 2 3 4 5 6" in create
    assert set(services["redis-cluster-init"]["depends_on"]) == set(redis)


def test_compose_app_settings_name_the_cluster(compose, tmp_path):
    services = compose["services"]
    layout = chc.read_layout()
    writers = sorted(name for name in services if name.startswith("writer-"))
    assert writers and "web" in services
    partitions = []
    for name in ["web", *writers]:
        env = {k: str(v) for k, v in services[name]["environment"].items()}
        env = {k: re.sub(r"\$\{[A-Z_]+:[?-][^}]*\}", "from-dot-env", v) for k, v in env.items()}
        settings = load_settings({**env, "ADSERVER_SECRET_KEY": KEY, "ADSERVER_PUBLIC_URL": "https://ads.example.com",
                                  "ADSERVER_DATA_DIR": str(tmp_path)})
        assert settings.clickhouse_cluster == layout.name
        assert settings.clickhouse_url.host in layout.hosts
        assert sorted(host for host, _ in settings.redis_cluster.nodes) == [f"redis-{n}" for n in range(1, 7)]
        if name.startswith("writer-"):
            assert services[name]["command"][:3] == ["python", "-m", "tracker.writer"]
            first, last = services[name]["command"][-1].split("-")
            partitions += range(int(first), int(last) + 1)
    # the writers take every partition of the stream, each exactly once
    assert sorted(partitions) == list(range(settings.stream_partitions))
