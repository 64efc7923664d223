"""The sub-commands ``run``, ``start`` and ``stop``, and their options."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from . import leftovers, procfs
from .common import (
    CHECKOUT,
    ENV_SH,
    EXIT_NO_TESTS,
    EXIT_SETUP_FAILED,
    LOOPBACK,
    PROG,
    SetupError,
    Terminated,
    say,
)
from .processes import find_our_servers, is_our_server, stop_processes
from .servers import Servers, load_recorded_pids
from .signals import install_terminate_handlers, run_command, signals_deferred


def remove_folder(folder: Path) -> None:
    """Delete the throw-away folder; a failure is reported, not fatal."""
    try:
        shutil.rmtree(folder)
    except FileNotFoundError:
        pass
    except OSError as exc:
        say(f"warning: could not remove {folder}: {exc}")


def command_env(servers: Servers, tmp: Path) -> dict[str, str]:
    """The command's environment: ours, the servers' variables, and a temporary folder inside the run's.

    With ``TMPDIR`` there, pytest's ``tmp_path`` folders and every ``tempfile`` of the tests live
    inside the run's folder: removed with it, and searched by the left-over check.
    """
    env = dict(os.environ, **servers.env(), TMPDIR=str(tmp))
    # Our servers are on loopback: never send test traffic to a proxy.
    for var in ("NO_PROXY", "no_proxy"):
        extra = [h for h in (LOOPBACK, "localhost") if h not in env.get(var, "").split(",")]
        env[var] = ",".join(filter(None, [env.get(var, ""), *extra]))
    return env


def cmd_run(command: list[str], keep: bool, cluster: bool = False) -> int:
    """``run``: servers up, command, servers down, check nothing is left, exit with the command's status.

    The run's folder holds ``servers/`` (data, logs, servers.json) and ``tmp/`` (the command's TMPDIR).
    """
    if not command:
        say("nothing to run: usage: python -m scripts.testservers run [--keep] -- <command...>")
        return EXIT_SETUP_FAILED
    install_terminate_handlers()
    folder = Path(tempfile.mkdtemp(prefix="adserver-test-")).resolve()
    servers = Servers(folder / "servers", mode="run", cluster_mode=cluster)
    tmp = folder / "tmp"
    servers.folder.mkdir()
    tmp.mkdir()
    var_before = leftovers.var_folders(CHECKOUT)
    since = procfs.start_ticks(os.getpid())  # a server started before the run is not the run's
    status, clean = EXIT_SETUP_FAILED, True
    try:
        servers.start(detached=False)
        env = command_env(servers, tmp)
        say(f"running: {shlex.join(command)}")
        started = time.monotonic()
        signal.signal(signal.SIGCHLD, servers.reap_children)
        status = run_command(command, env)
        say(f"command exited with status {status} after {time.monotonic() - started:.1f} s")
    except SetupError as exc:
        say(f"error: {exc}")
        status = EXIT_SETUP_FAILED
    except KeyboardInterrupt:
        say("interrupted")
        status = 128 + signal.SIGINT
    except Terminated as exc:
        say(str(exc))
        status = 128 + exc.signum
    finally:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        with signals_deferred():
            stopping = time.monotonic()
            servers.stop()
            say(f"servers stopped in {time.monotonic() - stopping:.1f} s")
            mark = ("ADSERVER_TEST_SERVERS_DIR", str(servers.folder))
            clean = leftovers.check([folder], CHECKOUT, mark, since, var_before)
            if keep:
                say(f"kept {folder} (--keep)")
            else:
                remove_folder(folder)
    if status == EXIT_NO_TESTS:
        say("exit status 5: pytest collected no tests; a run that tests nothing is a failure -> exit 1")
        return 1
    if not clean and status == 0:
        say("the command passed, but left servers or files behind (above) -> exit 1")
        return 1
    return status


def cmd_start(folder: Path, cluster: bool = False) -> int:
    """``start``: servers detached from us, described in servers.json/env.sh."""
    install_terminate_handlers()
    folder.mkdir(parents=True, exist_ok=True)
    folder = folder.resolve()
    running = find_our_servers(folder) | {p for p in load_recorded_pids(folder) if is_our_server(p, folder)}
    if running:
        raise SetupError(
            f"servers already running for {folder} (pids {sorted(running)}); "
            f"run: {PROG} stop --dir {shlex.quote(str(folder))}"
        )
    servers = Servers(folder, mode="start", cluster_mode=cluster)
    try:
        servers.start(detached=True)
    except BaseException:
        with signals_deferred():
            servers.stop()
        raise
    print((folder / ENV_SH).read_text(), end="")
    say(f"started; to use them: source {shlex.quote(str(folder / ENV_SH))}")
    say(f"to stop them (in {CHECKOUT}): {PROG} stop --dir {shlex.quote(str(folder))}")
    return 0


def cmd_stop(folder: Path) -> int:
    """``stop``: stop what ``start`` left running (the folder is kept)."""
    folder = folder.resolve()
    if not folder.is_dir():
        raise SetupError(f"{folder} does not exist")
    recorded = load_recorded_pids(folder)
    with signals_deferred():
        found = sorted(find_our_servers(folder) | {p for p in recorded if is_our_server(p, folder)})
        if not found:
            say(f"no servers running for {folder}")
        else:
            say(f"stopping pids {found}")
            stop_processes(folder, extra_pids=found)
            say("stopped")
    (folder / ENV_SH).unlink(missing_ok=True)  # its URLs point at nothing now
    return 0


CLUSTER_HELP = ("also start ZooKeeper, a ClickHouse cluster (2 shards x 2 replicas) and a Redis Cluster "
                "(3 primaries + 3 replicas): ADSERVER_TEST_CLUSTER_* variables")


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """Parse options; everything after the first ``--`` is the command.

    Splitting on ``--`` ourselves (instead of argparse.REMAINDER) means the
    command's own options, e.g. ``pytest -x --keep``, are never taken for
    ours.
    """
    argv = list(argv)
    command: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Private, throw-away Redis + ClickHouse servers for tests.",
    )
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser(
        "run",
        help="start servers, run a command, stop servers, check nothing is left running",
        usage=f"{PROG} run [--keep] [--cluster] -- <command...>",
    )
    run.add_argument(
        "--keep",
        action="store_true",
        help="keep the temp folder (logs, data) afterwards",
    )
    run.add_argument("--cluster", action="store_true", help=CLUSTER_HELP)
    run.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    for name, text in (
        ("start", "start servers in the background"),
        ("stop", "stop servers started by start"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument(
            "--dir",
            required=True,
            type=Path,
            help="folder for data, logs, servers.json, env.sh",
        )
        if name == "start":
            p.add_argument("--cluster", action="store_true", help=CLUSTER_HELP)
    args = parser.parse_args(argv)
    if args.action == "run":
        command = [*args.rest, *command]
    return args, command


def main(argv: Sequence[str] | None = None) -> int:
    args, command = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.action == "run":
            return cmd_run(command, args.keep, args.cluster)
        if args.action == "start":
            return cmd_start(args.dir, args.cluster)
        return cmd_stop(args.dir)
    except SetupError as exc:
        say(f"error: {exc}")
        return EXIT_SETUP_FAILED
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except Terminated as exc:
        say(str(exc))
        return 128 + exc.signum
