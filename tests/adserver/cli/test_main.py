"""The root group: help for every command, usage errors, configuration and domain errors, and the
per-invocation context."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from adserver.cli import PROG_NAME, main, run
from adserver.cli.context import command_context

BAD_CONFIG = {"ADSERVER_REDIS_URL": "bogus", "ADSERVER_CLICKHOUSE_URL": None}
CONTRACT_COMMANDS = {"migrate", "import-feed", "train", "evaluate", "demo", "create-advertiser", "create-user",
                     "create-token"}


def _invoke(*argv: str, env: dict | None = None):
    return CliRunner().invoke(main, list(argv), env=env, prog_name=PROG_NAME, catch_exceptions=False)


def test_the_root_help_lists_every_command():
    result = _invoke("--help")
    assert result.exit_code == 0, result.output
    listed = result.output.split("Commands:", 1)[1]
    assert CONTRACT_COMMANDS <= set(main.commands)
    for name, command in main.commands.items():
        assert f"  {name} " in listed
        assert command.get_short_help_str(limit=200).rstrip(".") in listed, name


@pytest.mark.parametrize("name", sorted(main.commands))
def test_every_command_has_help_that_needs_no_configuration(name, tmp_path):
    env = {**BAD_CONFIG, "ADSERVER_DATA_DIR": str(tmp_path / "var")}
    for flag in ("--help", "-h"):
        result = _invoke(name, flag, env=env)
        assert result.exit_code == 0, result.output
        assert result.output.startswith(f"Usage: {PROG_NAME} {name} ")
        assert main.commands[name].help.splitlines()[0] in result.output
        assert "configuration error" not in result.output
    assert not (tmp_path / "var").exists()


def test_usage_errors_come_before_the_configuration():
    result = _invoke("train-ctr", "--days", "many", env=BAD_CONFIG)
    assert result.exit_code == 2
    assert "Invalid value for '--days': 'many' is not a valid integer" in result.output
    assert "configuration error" not in result.output


def test_a_bad_configuration_is_one_line_and_exit_2():
    result = _invoke("migrate", env=BAD_CONFIG)
    assert result.exit_code == 2
    assert result.output == "configuration error: ADSERVER_REDIS_URL must look like redis://host:6379/0, got 'bogus'\n"


def test_unknown_and_missing_commands(runner):
    code, out = runner("launch-rockets")
    assert code == 2 and "No such command 'launch-rockets'" in out
    code, out = runner()
    assert code == 2 and "Usage: python -m adserver" in out and "migrate" in out
    code, out = runner("--bogus")
    assert code == 2 and "No such option '--bogus'" in out


@pytest.mark.parametrize("argv,message", [
    (("demo", "--bogus"), "No such option '--bogus'"),
    (("create-advertiser",), "Missing argument 'ID'"),
    (("create-advertiser", "a", "b"), "unexpected extra argument (b)"),
    (("create-placement", "slot"), "Missing option '--site'"),
    (("create-placement", "slot", "--site", "s.example", "--floor", "cheap"), "'cheap' is not a valid float"),
    (("import-feed", "shop", "feed.xml", "--format", "yaml"), "'yaml' is not one of 'csv', 'tsv', 'json', 'xml'"),
    (("train", "--k", "1.5"), "'1.5' is not a valid integer"),
    (("evaluate", "events.csv", "--split-at", "soon"), "'soon' is not a valid float"),
    (("create-user", "ann@shop.example"), "Missing option '--advertiser'"),
    (("create-campaign", "c", "--status", "running"), "'running' is not one of 'active', 'paused'"),
])
def test_bad_arguments_are_usage_errors(runner, argv, message):
    code, out = runner(*argv)
    assert code == 2, out
    assert message in out
    assert f"Try '{PROG_NAME} {argv[0]} --help' for help." in out


def test_a_domain_error_prints_its_code_and_exits_1(runner):
    code, out = runner("create-token", "nobody")
    assert code == 1
    assert out == "error (unknown_advertiser): unknown advertiser 'nobody'\n"


def test_run_returns_the_exit_status(settings, ch):
    assert run(["create-advertiser", "shop-a"], settings) == 0
    assert run(["create-token", "nobody"], settings) == 1
    assert run(["no-such-command"], settings) == 2
    assert ch.execute("SELECT id FROM advertisers FINAL") == [("shop-a",)]


def test_one_context_per_invocation_closed_at_its_end(settings, ch):
    with main.make_context(PROG_NAME, ["migrate"], obj=settings) as root:
        context = command_context(root)
        assert command_context(root) is context and context.settings is settings
        client = context.clickhouse()
        assert client.execute("SELECT 1") == [(1,)]
    fresh = context.stores.clickhouse()  # closed with the invocation: the next use opens a new client
    assert fresh is not client
    context.close()
