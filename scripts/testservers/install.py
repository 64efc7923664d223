"""Finding the server binaries, and installing the Debian packages when they are missing (as root)."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

from .common import SetupError, say

APT_PACKAGES = ("redis-server", "clickhouse-server", "clickhouse-client", "chromium", "fonts-noto-cjk", "wrk",
                "nginx")
# The browser tests (reports dashboard) drive Debian's Chromium and need a CJK font for Chinese text;
# the soak test measures the maximum rate with wrk.
BROWSER_FILES = (Path("/usr/bin/chromium"), Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
                 Path("/usr/bin/wrk"), Path("/usr/sbin/nginx"))  # nginx: the deploy config is checked with nginx -t
# The cluster mode's extra servers: ZooKeeper (Debian's package, run with java by us) and redis-cli.
CLUSTER_APT_PACKAGES = ("zookeeper", "redis-tools")
# zookeeper.jar names its dependencies in its manifest; the two others send its log4j output to stdout.
ZOOKEEPER_JARS = ("/usr/share/java/zookeeper.jar", "/usr/share/java/slf4j-log4j12.jar", "/usr/share/java/log4j-1.2.jar")
# Debian puts clickhouse-server in /usr/sbin, which is not on a normal user's
# PATH.
SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")
POLICY_RC_D = Path("/usr/sbin/policy-rc.d")


def find_binary(name: str) -> str | None:
    """Find ``name`` on PATH or in the sbin folders (not on PATH for users)."""
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN_DIRS))


@contextlib.contextmanager
def services_not_started_by_dpkg() -> Iterator[None]:
    """Stop Debian's postinst scripts from starting system-wide services.

    Without this, installing the packages on a machine without systemd may
    start a system Redis on 6379 and ClickHouse on 9000 that nobody stops.
    ``policy-rc.d`` exiting 101 is Debian's documented way to say "do not
    start services" (invoke-rc.d honours it).
    """
    policy = POLICY_RC_D
    if policy.exists():  # someone already decided; respect it
        yield
        return
    policy.write_text("#!/bin/sh\n# temporary, written by scripts/testservers\nexit 101\n")
    policy.chmod(0o755)
    try:
        yield
    finally:
        policy.unlink(missing_ok=True)


def _apt_install(packages: Sequence[str]) -> None:
    """``apt-get update`` and ``apt-get install -y packages``, no service started (we are root)."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    commands = [["apt-get", "update"], ["apt-get", "install", "-y", *packages]]
    with services_not_started_by_dpkg():
        for command in commands:
            say(f"$ DEBIAN_FRONTEND=noninteractive {shlex.join(command)}")
            result = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, check=False)
            if result.returncode != 0:
                raise SetupError(f"{shlex.join(command)} failed with status {result.returncode}")


def ensure_binaries() -> tuple[str, str]:
    """Return the paths of redis-server and clickhouse-server.

    Installs the Debian packages when they are missing and we are root (the
    case on CI, a fresh Debian 12 machine); otherwise says what to install.
    """
    redis, clickhouse = find_binary("redis-server"), find_binary("clickhouse-server")
    browser = all(f.exists() for f in BROWSER_FILES)
    if redis and clickhouse and browser:
        return redis, clickhouse
    missing = [n for n, p in (("redis-server", redis), ("clickhouse-server", clickhouse),
                              ("chromium, fonts-noto-cjk, wrk and nginx", browser)) if not p]
    if os.geteuid() != 0:
        raise SetupError(
            f"{' and '.join(missing)} not found "
            f"(looked on PATH and in {', '.join(SBIN_DIRS)}).\n"
            f"Install them first, as root:\n"
            f"  apt-get update && apt-get install -y {' '.join(APT_PACKAGES)}"
        )
    say(f"{' and '.join(missing)} not found; installing Debian packages (we are root)")
    _apt_install(APT_PACKAGES)
    redis, clickhouse = find_binary("redis-server"), find_binary("clickhouse-server")
    if not (redis and clickhouse):
        raise SetupError("packages installed, but redis-server/clickhouse-server still not found")
    return redis, clickhouse


def _cluster_missing() -> list[str]:
    """The Debian packages of the cluster mode whose files are missing."""
    found = {"zookeeper": all(Path(p).exists() for p in ZOOKEEPER_JARS) and find_binary("java"),
             "redis-tools": find_binary("redis-cli")}
    return [package for package, present in found.items() if not present]


def ensure_cluster_binaries() -> tuple[str, str]:
    """Return the paths of java (for ZooKeeper) and redis-cli (which joins the Redis Cluster).

    Debian's ``zookeeper`` package (it pulls a Java runtime) and ``redis-tools`` are installed when
    missing and we are root; the package's own service is never started (we run ZooKeeper ourselves).
    """
    missing = _cluster_missing()
    if missing and os.geteuid() != 0:
        raise SetupError(f"the cluster mode needs {' and '.join(missing)}; install as root:\n"
                         f"  apt-get update && apt-get install -y {' '.join(CLUSTER_APT_PACKAGES)}")
    if missing:
        say(f"{' and '.join(missing)} not found; installing Debian packages (we are root)")
        _apt_install(CLUSTER_APT_PACKAGES)
        missing = _cluster_missing()
        if missing:
            raise SetupError(f"packages installed, but the files of {' and '.join(missing)} are still missing")
    java, redis_cli = find_binary("java"), find_binary("redis-cli")
    if not (java and redis_cli):
        raise SetupError("java or redis-cli not found on PATH")
    return java, redis_cli
