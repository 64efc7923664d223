# `make run` serves the product with embedded stores; `make test` runs every test against real Redis
# and ClickHouse servers (installed with apt when missing, as root), plus the loopback cluster (ZooKeeper,
# ClickHouse 2 shards x 2 replicas, a Redis Cluster; about 8 s more to start), and fails if a test left a
# server running or wrote ./var into the checkout; `make test-fast` is the same without the tests marked
# slow, and without the cluster, which only slow tests use; `make test-cluster` runs the cluster's tests.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
export PORT

.PHONY: run test test-fast test-cluster bench bench-cluster venv lint demo clean

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

venv: $(VENV)/.installed

run: venv
	$(PY) -m adserver demo --reports
	@echo "Open http://127.0.0.1:$(PORT)/ (demo store: /demo/store, demo microblog: /demo/feed)"
	@echo "Reports: http://127.0.0.1:$(PORT)/reports (demo@example.com / demo-password)"
	ADSERVER_COOKIE_SECURE=$${ADSERVER_COOKIE_SECURE:-1} ADSERVER_WORKERS=1 \
		$(VENV)/bin/gunicorn -c deploy/gunicorn.conf.py 'adserver:create_app()'

TEST_SERVERS := $(PY) -m scripts.testservers run --
CLUSTER_TEST_SERVERS := ADSERVER_TEST_REQUIRE_CLUSTER=1 $(PY) -m scripts.testservers run --cluster --
CLUSTER_TESTS := tests/cluster tests/scripts/test_cluster_deploy.py tests/scripts/test_cluster_servers.py
# Two pytest workers, each on a Redis database and a ClickHouse database of its own (tests/conftest.py);
# the tests of the one shared cluster stay together on one worker (tests/conftest.py: cluster_scope).
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup

test: venv
	$(CLUSTER_TEST_SERVERS) $(PYTEST) $(PYTEST_ARGS)

test-fast: venv
	$(TEST_SERVERS) $(PYTEST) -m "not slow" $(PYTEST_ARGS)

test-cluster: venv
	$(CLUSTER_TEST_SERVERS) $(PYTEST) $(CLUSTER_TESTS) $(PYTEST_ARGS)

bench: venv
	$(PY) -m scripts.bench $(BENCH_ARGS)

# Writer scaling by partitions and cluster mode against single-node, on a throw-away loopback cluster
# (docs/scaling.md); the same as `make bench BENCH_ARGS=--cluster`.
bench-cluster: venv
	$(PY) -m scripts.bench --cluster $(BENCH_ARGS)

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf var .pytest_cache
