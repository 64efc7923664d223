"""Throw-away Redis and ClickHouse servers for the test suite.

The ad server needs a real Redis and a real ClickHouse in its integration
tests: fakes would hide exactly the bugs the tests are there to catch
(serialisation, TTLs, ClickHouse type coercion, ...).  This package gives every
test run its own private pair of servers, so that:

* tests never touch a developer's (or a machine's) system-wide services;
* two runs can happen side by side (every port is picked free at start);
* nothing survives the run: both servers are stopped and their data folder
  is deleted, whatever happens (test failure, Ctrl-C, SIGTERM from CI).

Usage (from the checkout)::

    python -m scripts.testservers run [--keep] [--cluster] -- <command...>
    python -m scripts.testservers start [--cluster] --dir D     # detached, for humans
    python -m scripts.testservers stop --dir D

``run`` starts both servers, runs the command with these variables added to
its environment, then stops the servers and exits with the command's status::

    ADSERVER_TEST_REDIS_URL       redis://127.0.0.1:P/0
    ADSERVER_TEST_CLICKHOUSE_URL  clickhouse://127.0.0.1:TCP/adserver_test
    ADSERVER_TEST_CLICKHOUSE_HTTP http://127.0.0.1:HTTP
    ADSERVER_TEST_SERVERS_DIR     the servers' throw-away folder
    TMPDIR                        a throw-away folder next to it (pytest's tmp_path lives there)

(and 127.0.0.1/localhost appended to NO_PROXY/no_proxy, so an http_proxy of
the machine never sees test traffic).  The database ``adserver_test`` is
created before the command runs.

``--cluster`` also starts, beside them, ZooKeeper, a ClickHouse cluster of
2 shards x 2 replicas and a Redis Cluster of 3 primaries with a replica
each, from the files of ``deploy/cluster/`` (``cluster.py`` says how, and
which ``ADSERVER_TEST_CLUSTER_*`` variables name them).

After stopping its servers, ``run`` checks that nothing the command started
is still running: a Redis, ClickHouse or ZooKeeper process whose working directory,
command line or open files lie inside the run's folders (or inside the
checkout, for processes started by the command) is named (pid, command,
cwd), stopped, and fails the run; so does a ``var/`` folder the run created
in the checkout.  See ``leftovers.py``.

Fault-injection tests: the folder holds ``servers.json`` (pids, ports,
command lines, working directory, config and log paths).  A test may
SIGTERM a server (``run`` reaps it at once, so its pid really vanishes)
and start it again with the recorded ``cmd`` and ``cwd``: same ports, same
data.  A server restarted that way is still stopped at the end: cleanup also
sweeps every redis/clickhouse process whose working directory or command
line lies inside the folder, not only the pids ``run`` started.  If ``run``
is killed outright (SIGKILL), Linux sends the servers it started a
SIGTERM (PR_SET_PDEATHSIG); only the folder is then left behind.

Status 5 from the command (pytest: "no tests were collected") is turned into
1: a run that tested nothing must not look green.  Status 2 means the servers
could not be set up.

Only the standard library is used on purpose: the package must work before
the project's virtualenv exists, and must not import project code (which
could itself be what is broken).
"""

from __future__ import annotations

from .clickhouse import ClickHouseServer, start_clickhouse
from .install import ensure_binaries
from .leftovers import Leftover, find_leftovers
from .processes import stop_processes
from .redis import RedisServer, start_redis

__all__ = [
    "ClickHouseServer",
    "Leftover",
    "RedisServer",
    "ensure_binaries",
    "find_leftovers",
    "start_clickhouse",
    "start_redis",
    "stop_processes",
]
