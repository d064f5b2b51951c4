"""The compose stack, Prometheus and Alertmanager config, alert rules, Grafana dashboard
and the image's pinned requirements.

Docker cannot run here, so the stack's app and worker are started as local processes
with the compose file's own commands and environment, and scraped at the paths the
shipped Prometheus config uses. Alert rules and dashboard queries may only name
metrics those scrapes expose, and a real Prometheus (Debian's) scraping that stack
answers every dashboard query with data.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from engage.store import tokens, webhooks
from tests.conftest import make_app
from tests.redis_server import RedisServer, free_port
from tests.webhook_receiver import Receiver, signature_ok

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"
SECRET = "deploy-test-secret-key-0123456789"
PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset",
}
# Prometheus adds `up` per scrape target itself; it never appears in an exposition.
PROMETHEUS_SYNTHETIC = {"up"}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE)
    return data


def resolve(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} interpolation."""
    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        if env.get(name):
            return env[name]
        if op == ":?":
            raise AssertionError(f"compose needs {name}: {arg}")
        return arg if op == ":-" else ""
    return re.sub(r"\$\{([A-Z0-9_]+)(?:(:[-?])([^}]*))?\}", one, value)


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (not functions, labels or keywords)."""
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", expr):
        if match.group(2) or match.group(1) in PROMQL_KEYWORDS:
            continue
        names.add(match.group(1))
    return names


def exposed(text: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(s.name for s in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + s for s in ("_bucket", "_sum", "_count"))
    return names


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


def wait_for(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, log.read_text()
        try:
            if get(url)[0] == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{url} never answered\n{log.read_text()}"
        time.sleep(0.1)


def local_command(command: list[str]) -> list[str]:
    """The container's command with this interpreter's console scripts."""
    assert command[0] == "engage", command
    return [sys.executable, "-m", "engage.cli", *command[1:]]


# -- the stack on local processes ---------------------------------------------------------
class Stack:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.redis = RedisServer(tmp / "redis").start()
        self.processes: list[subprocess.Popen[bytes]] = []
        self.ports = {"engage": free_port(), "worker": free_port()}
        services = compose()["services"]
        given = {"ENGAGE_SECRET_KEY": SECRET, "GRAFANA_ADMIN_PASSWORD": "unused-here"}
        local = {  # what differs between a container network and one test machine
            "ENGAGE_REDIS_URL": self.redis.url,
            "ENGAGE_BIND": f"127.0.0.1:{self.ports['engage']}",
            "ENGAGE_WORKERS": "2",
            "ENGAGE_WORKER_METRICS_PORT": str(self.ports["worker"]),
            "ENGAGE_WORKER_METRICS_HOST": "127.0.0.1",
            "ENGAGE_DATA_DIR": str(tmp),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
            "ENGAGE_WORKER_POLL": "0.05",
        }
        for name in ("engage", "worker"):
            service = services[name]
            env = {k: resolve(str(v), given) for k, v in service["environment"].items()}
            for key in local:
                if key in env:
                    env[key] = local[key]
            env.setdefault("ENGAGE_DATA_DIR", str(tmp))
            env.setdefault("ENGAGE_WORKER_POLL", "0.05")
            env["ENGAGE_WEBHOOK_ALLOW_PRIVATE"] = "1"  # the test receiver is on loopback
            log = tmp / f"{name}.log"
            self.processes.append(subprocess.Popen(
                local_command(service["command"]), cwd=ROOT,
                env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                stderr=open(log, "wb"),  # noqa: SIM115
            ))
        prometheus = load_yaml(DEPLOY / "prometheus.yml")
        self.jobs: dict[str, str] = {}
        for job in prometheus["scrape_configs"]:
            target = job["static_configs"][0]["targets"][0]
            host, _, _port = target.partition(":")
            path = job.get("metrics_path", "/metrics")
            self.jobs[job["job_name"]] = f"http://127.0.0.1:{self.ports[host]}{path}"
        wait_for(f"http://127.0.0.1:{self.ports['engage']}/healthz", self.processes[0],
                 tmp / "engage.log")
        wait_for(self.jobs["engage-worker"], self.processes[1], tmp / "worker.log")

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self.redis.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(tmp_path_factory.mktemp("stack"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def exposed_names(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    names = set()
    for url in stack.jobs.values():
        names |= exposed(get(url)[1])
    # One process without the multiprocess directory also lists families with no
    # samples yet (a scrape of `engage serve` shows a family once some worker touched it).
    app = make_app(stack.redis.url, tmp_path_factory.mktemp("single"))
    names |= exposed(app.test_client().get("/metrics").get_data(as_text=True))
    return names


def test_stack_answers_at_the_prometheus_paths(stack: Stack) -> None:
    """The app and the worker, started as compose starts them, serve every job's path;
    a webhook registered on that stack receives a vote, seen in the worker's metrics."""
    assert set(stack.jobs) == {"engage", "engage-worker"}
    app = make_app(stack.redis.url, stack.tmp)
    from engage.store import get_store

    with app.app_context():
        store = get_store()
        editor, _ = tokens.create(store, "editor", "deploy test")
    with Receiver() as receiver:
        webhooks.create(store, receiver.url, ["reaction.*"], SECRET)
        base = f"http://127.0.0.1:{stack.ports['engage']}"
        article = {"title": "Deploy", "url": "https://news.example.com/deploy",
                   "section": "Ops", "published_at": "2026-01-01T00:00:00Z"}
        request = urllib.request.Request(
            base + "/api/v1/articles/deploy", data=json.dumps(article).encode(), method="PUT",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {editor}"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 201
        request = urllib.request.Request(base + "/api/v1/readers", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            reader = json.loads(response.read())["reader"]
        request = urllib.request.Request(
            base + "/api/v1/articles/deploy/reactions/mine",
            data=json.dumps({"choice": "yes"}).encode(), method="PUT",
            headers={"Content-Type": "application/json", "X-Engage-Reader": reader},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200
        deadline = time.monotonic() + 20
        while not receiver.delivered:
            assert time.monotonic() < deadline, (stack.tmp / "worker.log").read_text()
            time.sleep(0.05)
        assert signature_ok(SECRET, receiver.delivered[0])

    status, app_text = get(stack.jobs["engage"])
    assert status == 200
    app_names = exposed(app_text)
    assert {"engage_build_info", "engage_votes_accepted_total", "engage_redis_up",
            "engage_http_request_duration_seconds_bucket"} <= app_names
    accepted = [s.value for f in text_string_to_metric_families(app_text) for s in f.samples
                if s.name == "engage_votes_accepted_total" and s.labels == {"kind": "reaction"}]
    assert accepted == [1.0]
    deadline = time.monotonic() + 10
    while True:
        worker_text = get(stack.jobs["engage-worker"])[1]
        delivered = [s.value for f in text_string_to_metric_families(worker_text)
                     for s in f.samples if s.name == "engage_webhook_deliveries_total"
                     and s.labels == {"outcome": "delivered"}]
        if delivered == [1.0]:
            break
        assert time.monotonic() < deadline, delivered
        time.sleep(0.1)
    # Each role exports its own families only; the worker its one process, the app's
    # multiprocess directory none (prometheus client's multiprocess mode has no process
    # metrics).
    worker_names = exposed(worker_text)
    assert not any(n.startswith(("engage_http_", "engage_votes_", "engage_link_"))
                   for n in worker_names), worker_names
    assert not any(n.startswith("engage_webhook_") for n in app_names), app_names
    assert "\nengage_process_resident_memory_bytes " in worker_text
    assert not any(n.startswith("engage_process_") for n in app_names), app_names


# -- the compose file -----------------------------------------------------------------
def test_compose_services_and_redis_durability() -> None:
    data = compose()
    services = data["services"]
    assert set(services) >= {"nginx", "engage", "worker", "redis", "prometheus",
                             "alertmanager", "grafana"}
    redis_command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_command
    assert "--appendfsync everysec" in redis_command
    assert "redis-data:/data" in services["redis"]["volumes"]
    assert "redis-data" in data["volumes"]
    engage = services["engage"]
    assert engage["command"] == ["engage", "serve"]
    assert engage["environment"]["PROMETHEUS_MULTIPROC_DIR"]
    assert services["worker"]["command"][:2] == ["engage", "worker"]
    assert "PROMETHEUS_MULTIPROC_DIR" not in services["worker"]["environment"]
    for name in ("engage", "worker"):
        assert services[name]["environment"]["ENGAGE_REDIS_URL"] == "redis://redis:6379/0"
    # Every bind-mounted file or directory exists in the repository.
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
    with pytest.raises(AssertionError, match="ENGAGE_SECRET_KEY"):
        resolve(services["engage"]["environment"]["ENGAGE_SECRET_KEY"], {})


def test_compose_puts_nginx_in_front_of_engage() -> None:
    """Readers reach engage only through nginx, which runs deploy/nginx/nginx.conf (that
    file is exercised under a real nginx by tests/test_nginx.py), and engage believes
    X-Forwarded-For from nginx's fixed address alone."""
    data = compose()
    services = data["services"]
    nginx, engage = services["nginx"], services["engage"]
    conf = (DEPLOY / "nginx" / "nginx.conf").read_text()
    assert nginx["volumes"] == ["./deploy/nginx/nginx.conf:/etc/nginx/nginx.conf:ro"]
    (listen,) = re.findall(r"^\s*listen (\d+);", conf, re.M)
    assert nginx["ports"] == [f"8000:{listen}"]
    assert "ports" not in engage
    bind_port = engage["environment"]["ENGAGE_BIND"].rsplit(":", 1)[1]
    assert re.findall(r"^\s*server ([\w.:]+);", conf, re.M) == [f"engage:{bind_port}"]
    (network,) = data["networks"]["front"]["ipam"]["config"]
    subnet = ipaddress.ip_network(network["subnet"])
    proxy = ipaddress.ip_address(nginx["networks"]["front"]["ipv4_address"])
    upstream = ipaddress.ip_address(engage["networks"]["front"]["ipv4_address"])
    assert proxy in subnet and upstream in subnet and proxy != upstream
    assert set(nginx["networks"]) == {"front"}
    assert set(engage["networks"]) == {"default", "front"}  # Redis, Prometheus; nginx
    assert engage["environment"]["ENGAGE_TRUSTED_PROXIES"] == f"{proxy}/32"
    assert nginx["depends_on"]["engage"]["condition"] == "service_healthy"
    assert f"http://127.0.0.1:{listen}/healthz" in nginx["healthcheck"]["test"]


def test_compose_builds_one_image_and_keeps_the_consoles_local() -> None:
    services = compose()["services"]
    # The worker is built from the same Dockerfile as the app, into the same image.
    for name in ("engage", "worker"):
        assert services[name]["build"] == ".", name
        assert services[name]["image"] == "engage:local", name
    assert services["worker"]["environment"]["ENGAGE_WORKER_METRICS_HOST"] == "0.0.0.0"
    assert "ports" not in services["worker"]
    # Consoles without their own sign-in answer on the host's loopback only.
    for name, port in (("prometheus", 9090), ("alertmanager", 9093), ("grafana", 3000)):
        assert services[name]["ports"] == [f"127.0.0.1:{port}:{port}"], name
    mounts = services["alertmanager"]["volumes"]
    assert "./deploy/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro" in mounts
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in services["alertmanager"]["command"]


def test_alertmanager_routes_every_alert_to_the_webhook_receiver() -> None:
    config = load_yaml(DEPLOY / "alertmanager.yml")
    receivers = {r["name"]: r for r in config["receivers"]}
    route = config["route"]
    assert route["receiver"] in receivers
    for sub in route.get("routes", []):
        assert sub["receiver"] in receivers
    hook = receivers[route["receiver"]]["webhook_configs"][0]
    assert hook["url"].startswith("http") and hook["send_resolved"] is True
    # Prometheus sends its alerts to the compose service, on its port.
    prometheus = load_yaml(DEPLOY / "prometheus.yml")
    (target,) = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert target == "alertmanager:9093"
    assert "alertmanager" in compose()["services"]


@pytest.mark.skipif(shutil.which("amtool") is None,
                    reason="amtool (Debian package prometheus-alertmanager) is not installed")
def test_amtool_accepts_the_alertmanager_config() -> None:
    checked = subprocess.run(["amtool", "check-config", str(DEPLOY / "alertmanager.yml")],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_prometheus_targets_match_the_services() -> None:
    services = compose()["services"]
    config = load_yaml(DEPLOY / "prometheus.yml")
    ports = {
        "engage": services["engage"]["environment"]["ENGAGE_BIND"].rsplit(":", 1)[1],
        "worker": services["worker"]["environment"]["ENGAGE_WORKER_METRICS_PORT"],
    }
    targets = {t for job in config["scrape_configs"] for s in job["static_configs"]
               for t in s["targets"]}
    assert targets == {f"{name}:{port}" for name, port in ports.items()}
    mounts = services["prometheus"]["volumes"]
    assert "./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts
    # Prometheus reads a relative rule file next to its config: both are mounted in the
    # same directory, as they sit together in deploy/.
    rule_target = next(m.split(":")[1] for m in mounts if m.startswith("./deploy/alerts.yml"))
    assert config["rule_files"] == ["alerts.yml"]
    assert rule_target == "/etc/prometheus/alerts.yml"


def test_dockerfile_runs_what_compose_expects() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["engage", "serve"]' in dockerfile
    assert "gunicorn" not in dockerfile
    assert "USER engage" in dockerfile


def _compose_command() -> list[str]:
    """`docker compose` (the plugin) or Debian's `docker-compose`; `.ci/run` installs the
    latter. `config` only parses and interpolates, so no Docker engine is needed."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.skip("docker-compose (Debian package docker-compose) is not installed")


def test_docker_compose_config_accepts_the_file() -> None:
    env = {**os.environ, "ENGAGE_SECRET_KEY": SECRET, "GRAFANA_ADMIN_PASSWORD": "x" * 16}
    result = subprocess.run([*_compose_command(), "-f", str(COMPOSE), "config", "--quiet"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# -- alert rules and dashboard ----------------------------------------------------------------
def test_metric_name_extraction() -> None:
    expr = ('histogram_quantile(0.95, sum by (le, route) (rate(x_bucket{route!="/m"}[5m])))'
            ' / on (job) group_left up > bool 0.5')
    assert metric_names(expr) == {"x_bucket", "up"}


def test_alert_rules_are_well_formed_and_use_exposed_metrics(exposed_names: set[str]) -> None:
    rules = load_yaml(DEPLOY / "alerts.yml")
    alerts = {}
    for group in rules["groups"]:
        assert group["name"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
            assert re.fullmatch(r"[A-Z][A-Za-z]+", rule["alert"])
            assert rule["expr"].count("(") == rule["expr"].count(")")
            if "for" in rule:
                assert re.fullmatch(r"\d+[smh]", rule["for"])
            assert rule["labels"]["severity"] in {"critical", "warning"}
            assert rule["annotations"]["summary"]
            names = metric_names(rule["expr"])
            assert names, rule["alert"]
            assert names <= exposed_names | PROMETHEUS_SYNTHETIC, (rule["alert"], names)
            alerts[rule["alert"]] = rule["expr"]
    # The four: error rate, latency, Redis down, webhook dead letters.
    assert 'status="5xx"' in alerts["EngageHighErrorRate"]
    assert "engage_http_request_duration_seconds_bucket" in alerts["EngageHighLatency"]
    assert "engage_redis_up" in alerts["EngageRedisDown"]
    assert "engage_webhook_dead_letters_total" in alerts["EngageWebhookDeadLetters"]


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool (Debian package prometheus) is not installed")
def test_promtool_accepts_rules_and_config() -> None:
    rules = subprocess.run(["promtool", "check", "rules", str(DEPLOY / "alerts.yml")],
                           capture_output=True, text=True, timeout=60)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    # The shipped file as it is, its rule file found next to it.
    checked = subprocess.run(["promtool", "check", "config", str(DEPLOY / "prometheus.yml")],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 rule files found" in checked.stdout + checked.stderr


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (DEPLOY / "grafana" / "dashboards" / "engage.json").read_text())
    return data


def dashboard_queries() -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"]) for panel in dashboard()["panels"]
            for target in panel["targets"]]


def legend_labels() -> dict[str, set[str]]:
    """The labels each query's legend names ("{{op}}"), by query."""
    return {target["expr"]: set(re.findall(r"\{\{\s*(\w+)\s*\}\}",
                                            target.get("legendFormat", "")))
            for panel in dashboard()["panels"] for target in panel["targets"]}


def test_dashboard_imports_anywhere() -> None:
    """No uid of this Grafana's: the datasource, job and instance are variables, and every
    selector filters by job and instance; Prometheus's own scrapes are not traffic."""
    board = dashboard()
    assert "uid" not in board and "id" not in board
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert "engage_build_info" in variables["job"]["query"]["query"]
    assert "$job" in variables["instance"]["query"]["query"]
    sources = [board_part["datasource"] for board_part in [
        *board["panels"], *(t for p in board["panels"] for t in p["targets"]),
        variables["job"], variables["instance"]]]
    assert all(source == {"type": "prometheus", "uid": "${datasource}"} for source in sources)
    assert '"uid": "prometheus"' not in json.dumps(board)
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for title, expr in dashboard_queries():
        selectors = re.findall(r"[a-z_]+\{([^}]*)\}", expr)
        assert selectors, (title, expr)
        for selector in selectors:
            assert 'job=~"$job"' in selector and 'instance=~"$instance"' in selector, title
        if "engage_http_request" in expr and "in_progress" not in expr:
            assert expr.count('route!="/metrics"') == len(selectors), title


def test_dashboard_queries_only_exposed_metrics(exposed_names: set[str]) -> None:
    queried = set()
    for title, expr in dashboard_queries():
        names = metric_names(expr)
        assert names, expr
        assert names <= exposed_names, (title, names - exposed_names)
        queried |= names
    # The dashboard covers every family engage defines.
    engage_families = {n for n in exposed_names if n.startswith("engage_")}
    for family in ("engage_http_requests_total", "engage_votes_accepted_total",
                   "engage_redis_command_duration_seconds_bucket",
                   "engage_redis_commands_total", "engage_redis_command_seconds_total",
                   "engage_webhook_deliveries_total", "engage_webhook_dead_letters_total",
                   "engage_process_resident_memory_bytes", "engage_process_cpu_seconds_total",
                   "engage_process_open_fds"):
        assert family in engage_families and family in queried
    provider = load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "engage.yml")
    mounts = compose()["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{provider['providers'][0]['options']['path']}:ro" in mounts
    datasource = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


# -- a real Prometheus scraping the stack ---------------------------------------------------
@pytest.fixture(scope="module")
def prometheus(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's prometheus, with the shipped config pointed at the local stack: the same
    jobs and rules, scraped every second, no Alertmanager."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus (Debian package prometheus) is not installed")
    tmp = tmp_path_factory.mktemp("prometheus")
    config = load_yaml(DEPLOY / "prometheus.yml")
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(DEPLOY / "alerts.yml")]
    del config["alerting"]
    for job in config["scrape_configs"]:
        address = urllib.parse.urlsplit(stack.jobs[job["job_name"]]).netloc
        job["static_configs"] = [{"targets": [address]}]
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = tmp / "prometheus.log"
    process = subprocess.Popen(
        [binary, f"--config.file={tmp / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=open(log, "wb"),  # noqa: SIM115
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(base + "/-/ready", process, log)
        yield base
    finally:
        process.terminate()
        process.wait(20)


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    url = prometheus + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    body = json.loads(get(url)[1])
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def grafana_expr(expr: str) -> str:
    """The query as Grafana sends it with every job and instance selected."""
    return (expr.replace("$__rate_interval", "30s").replace("$job", ".+")
            .replace("$instance", ".+"))


class LightTraffic:
    """Readers vote and read; a webhook receives their votes through the worker."""

    def __init__(self, stack: Stack, receiver: Receiver) -> None:
        self.base = f"http://127.0.0.1:{stack.ports['engage']}"
        self.stack = stack
        self.receiver = receiver
        self.votes = 0
        app = make_app(stack.redis.url, stack.tmp)
        from engage.store import get_store

        with app.app_context():
            store = get_store()
            editor, _ = tokens.create(store, "editor", "light traffic")
        webhooks.create(store, receiver.url, ["reaction.*"], SECRET)
        self.call("PUT", "/api/v1/articles/light", {
            "title": "Light", "url": "https://news.example.com/light", "section": "Ops",
            "published_at": "2026-01-01T00:00:00Z"}, Authorization=f"Bearer {editor}")

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> Any:
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers=headers)
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read() or b"null")

    def round(self) -> None:
        for choice in ("yes", "no"):
            reader = self.call("POST", "/api/v1/readers", {})["reader"]
            self.call("PUT", "/api/v1/articles/light/reactions/mine", {"choice": choice},
                      **{"X-Engage-Reader": reader})
            self.call("GET", "/api/v1/articles/light/reactions")
            self.votes += 1
        deadline = time.monotonic() + 20
        while len(self.receiver.delivered) < self.votes:
            assert time.monotonic() < deadline, (self.stack.tmp / "worker.log").read_text()
            time.sleep(0.05)


def test_every_dashboard_panel_has_data_from_a_real_prometheus(
        stack: Stack, prometheus: str) -> None:
    """Under light traffic, every query of every panel returns at least one number, and
    the job and instance variables list the app and the worker."""
    queries = dashboard_queries()
    deadline = time.monotonic() + 45
    with Receiver() as receiver:
        traffic = LightTraffic(stack, receiver)
        while True:
            # Traffic keeps coming: a rate needs two scrapes that saw a series change.
            traffic.round()
            empty = []
            answers = {}
            for title, expr in queries:
                answers[expr] = query(prometheus, grafana_expr(expr))
                if not any(s["value"][1] != "NaN" for s in answers[expr]):
                    empty.append(title)
            if not empty:
                break
            assert time.monotonic() < deadline, f"no data: {empty}"
            time.sleep(1)
    # A legend names labels the answer has: grouping by a label the series lost (the
    # Redis histogram's old `op`) still answers, one series without it.
    for title, expr in queries:
        for series in answers[expr]:
            assert legend_labels()[expr] <= set(series["metric"]), (title, series["metric"])
    jobs = json.loads(get(prometheus + "/api/v1/label/job/values?match[]=engage_build_info")[1])
    assert set(jobs["data"]) == {"engage", "engage-worker"}
    # The shipped rules evaluate against these series, and a healthy stack fires none.
    rules = json.loads(get(prometheus + "/api/v1/rules")[1])["data"]["groups"]
    deadline = time.monotonic() + 10
    while not all(r.get("lastEvaluation", "").startswith("2") for g in rules
                  for r in g["rules"]):
        assert time.monotonic() < deadline
        time.sleep(0.5)
        rules = json.loads(get(prometheus + "/api/v1/rules")[1])["data"]["groups"]
    for group in rules:
        for rule in group["rules"]:
            assert rule["health"] == "ok", rule
            assert rule["state"] == "inactive", rule
