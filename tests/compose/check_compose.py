#!/usr/bin/env python3
"""Checks that compose/docker-compose.yml describes the issue-9 topology and that it is wired
together, on the file as docker-compose itself resolves it (`docker-compose config`: anchors,
defaults and interpolation applied), plus compose/Dockerfile, compose/prometheus.yml and the
Grafana provisioning it mounts.

usage: check_compose.py REPO_ROOT
Exit 0 when every check passes; otherwise one line per broken check and exit 1.
"""
import os
import re
import subprocess
import sys

import yaml

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".")
COMPOSE_DIR = os.path.join(ROOT, "compose")
COMPOSE_FILE = os.path.join(COMPOSE_DIR, "docker-compose.yml")

# The services the issue names (and the one-shot helpers this file adds).
REQUIRED_SERVICES = ["kafka", "kafka-init", "postgres", "ffe", "payment-sim", "shipping-sim", "stock",
                     "producer", "prometheus", "grafana"]
# The contract topics (ARCHITECTURE.md, "Public contracts").
CONTRACT_TOPICS = ["ff.orders.commands", "ff.inventory.commands", "ff.payments.requests", "ff.payments.replies",
                   "ff.shipments.requests", "ff.shipments.replies", "ff.orders.outcomes", "ff.dlq", "ff.events"]

failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
    return ok


def as_list(command):
    if command is None:
        return []
    if isinstance(command, str):
        return command.split()
    return [str(c) for c in command]


def flag_value(args, flag):
    """The value after `flag` in an argv list (or `flag=value`), else None."""
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a[len(flag) + 1:]
    return None


def mounts(service):
    """target -> source of a service's volumes; `config` prints them as "source:target[:mode]"
    (docker-compose 1.29) or as mappings (newer compose)."""
    result = {}
    for v in service.get("volumes", []):
        if isinstance(v, dict):
            result[v.get("target")] = v.get("source")
        else:
            parts = str(v).split(":")
            if len(parts) >= 2:
                result[parts[1]] = parts[0]
    return result


def depends_on(service):
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: {"condition": "service_started"} for d in deps}
    return deps


def main():
    env = dict(os.environ)
    # The defaults in the file are what is checked, not whatever the caller's shell exports.
    for var in ("FFE_PG_PASSWORD", "FFE_GRAFANA_PASSWORD"):
        env.pop(var, None)
    out = subprocess.run(["docker-compose", "-f", COMPOSE_FILE, "config"], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        print("docker-compose config failed:\n" + out.stderr)
        return 1
    config = yaml.safe_load(out.stdout)
    services = config.get("services", {})

    for name in REQUIRED_SERVICES:
        check(name in services, f"service {name} is missing")
    if failures:
        print("\n".join(failures))
        return 1

    # Kafka: the official image, KRaft (no ZooKeeper), one node.
    kafka = services["kafka"]
    kenv = kafka.get("environment", {})
    check(str(kafka.get("image", "")).startswith("apache/kafka:"), "kafka does not use the official apache/kafka image")
    check("controller" in str(kenv.get("KAFKA_PROCESS_ROLES", "")) and "broker" in str(kenv.get("KAFKA_PROCESS_ROLES", "")),
          "kafka is not a combined KRaft broker+controller (KAFKA_PROCESS_ROLES)")
    check(not any("ZOOKEEPER" in k for k in kenv), "kafka mentions ZooKeeper")
    check(mounts(kafka).get(str(kenv.get("KAFKA_LOG_DIRS"))) == "kafka-data",
          "kafka's log dir (KAFKA_LOG_DIRS) is not on the kafka-data volume")
    advertised = str(kenv.get("KAFKA_ADVERTISED_LISTENERS", ""))
    internal = re.search(r"//(kafka:\d+)", advertised)
    check(internal is not None, "kafka advertises no kafka:PORT listener for the other containers")
    bootstrap = internal.group(1) if internal else "kafka:9092"

    # Topics created at start, idempotently, on the same bootstrap.
    init = services["kafka-init"]
    init_text = " ".join(as_list(init.get("command")) + as_list(init.get("entrypoint"))) + " " + \
        " ".join(f"{k}={v}" for k, v in (init.get("environment") or {}).items())
    check("kafka-topics.sh" in init_text and "--create" in init_text and "--if-not-exists" in init_text,
          "kafka-init does not run kafka-topics.sh --create --if-not-exists")
    for topic in CONTRACT_TOPICS:
        check(topic in init_text, f"kafka-init does not create {topic}")
    check(bootstrap in init_text, f"kafka-init does not use the bootstrap {bootstrap}")
    check(depends_on(init).get("kafka", {}).get("condition") == "service_healthy", "kafka-init does not wait for a healthy kafka")

    # PostgreSQL 15 with its data on a volume.
    pg = services["postgres"]
    check(str(pg.get("image", "")).startswith("postgres:15"), "postgres is not the official postgres:15 image")
    pg_env = pg.get("environment", {})
    check(mounts(pg).get("/var/lib/postgresql/data") == "postgres-data", "postgres's data is not on the postgres-data volume")

    # ffe serve: brokers, admin HTTP, data dir, analytics, dependencies, health.
    ffe = services["ffe"]
    args = as_list(ffe.get("command"))
    check("serve" in args, "the ffe service does not run `ffe serve`")
    check(flag_value(args, "--brokers") == bootstrap, f"ffe serve --brokers is not {bootstrap}")
    http = flag_value(args, "--http") or ""
    check(http.startswith("0.0.0.0:"), "ffe serve --http does not bind 0.0.0.0 inside its container")
    ffe_port = http.rsplit(":", 1)[-1]
    data_dir = flag_value(args, "--data-dir")
    check(data_dir is not None, "ffe serve has no --data-dir")
    check(mounts(ffe).get(data_dir) == "ffe-data", "ffe's --data-dir is not on the ffe-data volume")
    analytics = flag_value(args, "--analytics") or ""
    m = re.match(r"postgresql://([^:@/]+)(?::([^@/]*))?@([^:/]+):(\d+)/(\w+)$", analytics)
    check(m is not None, "ffe serve --analytics is not a postgresql:// URL")
    if m:
        user, password, host, port, db = m.groups()
        check(host == "postgres" and port == "5432", "ffe's analytics URL does not point at the postgres service")
        check(user == str(pg_env.get("POSTGRES_USER")) and db == str(pg_env.get("POSTGRES_DB")) and
              password == str(pg_env.get("POSTGRES_PASSWORD")),
              "ffe's analytics user/password/database differ from postgres's POSTGRES_*")
    deps = depends_on(ffe)
    check("postgres" in deps and deps["postgres"].get("condition") == "service_healthy",
          "ffe does not wait for a healthy postgres")
    check("kafka" in deps or "kafka-init" in deps, "ffe does not depend on kafka (or on kafka-init, which waits for it)")
    if "kafka-init" in deps:
        check(deps["kafka-init"].get("condition") == "service_completed_successfully",
              "ffe does not wait for the topics (kafka-init completed)")
    health = " ".join(as_list((ffe.get("healthcheck") or {}).get("test")))
    check("/readyz" in health and ffe_port in health, "ffe's healthcheck does not probe /readyz on its port")
    check(str(ffe.get("build", {}).get("dockerfile", "")).endswith("compose/Dockerfile"),
          "ffe is not built from compose/Dockerfile")

    # The simulators and the producers: the same image, the same bootstrap.
    for name, want in (("payment-sim", ["sim", "payment"]), ("shipping-sim", ["sim", "shipping"]),
                       ("stock", ["produce", "stock"]), ("producer", ["produce", "orders"])):
        svc = services[name]
        a = as_list(svc.get("command"))
        check(a[:2] == want, f"{name} does not run `ffe {' '.join(want)}`")
        check(flag_value(a, "--brokers") == bootstrap, f"{name} --brokers is not {bootstrap} (ffe's)")
        check(svc.get("image") == ffe.get("image"), f"{name} does not use ffe's image")
        check(bool(depends_on(svc)), f"{name} depends on nothing")
    check(depends_on(services["producer"]).get("stock", {}).get("condition") == "service_completed_successfully",
          "the producer does not wait for the stock receipts")
    check(depends_on(services["stock"]).get("ffe", {}).get("condition") == "service_healthy",
          "the stock receipts do not wait for a ready ffe")

    # Prometheus scrapes ffe's /metrics at ffe's port; Grafana reads Prometheus.
    prom = services["prometheus"]
    prom_config_path = mounts(prom).get("/etc/prometheus/prometheus.yml")
    check(prom_config_path is not None and os.path.exists(prom_config_path) and
          os.path.samefile(prom_config_path, os.path.join(COMPOSE_DIR, "prometheus.yml")),
          "prometheus does not mount compose/prometheus.yml")
    check(mounts(prom).get("/prometheus") == "prometheus-data", "prometheus's TSDB is not on the prometheus-data volume")
    with open(os.path.join(COMPOSE_DIR, "prometheus.yml")) as f:
        prom_config = yaml.safe_load(f)
    scrapes = [(j.get("metrics_path", "/metrics"), t) for j in prom_config.get("scrape_configs", [])
               for sc in j.get("static_configs", []) for t in sc.get("targets", [])]
    check(("/metrics", f"ffe:{ffe_port}") in scrapes, f"prometheus.yml does not scrape ffe:{ffe_port}/metrics")
    prom_port = "9090"
    graf = services["grafana"]
    graf_mounts = mounts(graf)
    prov = graf_mounts.get("/etc/grafana/provisioning")
    check(prov is not None and os.path.exists(prov) and os.path.samefile(prov, os.path.join(COMPOSE_DIR, "grafana", "provisioning")),
          "grafana does not mount compose/grafana/provisioning")
    with open(os.path.join(COMPOSE_DIR, "grafana", "provisioning", "datasources", "prometheus.yml")) as f:
        sources = yaml.safe_load(f).get("datasources", [])
    check(any(s.get("type") == "prometheus" and s.get("url") == f"http://prometheus:{prom_port}" for s in sources),
          "grafana's datasource does not point at http://prometheus:9090")
    with open(os.path.join(COMPOSE_DIR, "grafana", "provisioning", "dashboards", "ffe.yml")) as f:
        providers = yaml.safe_load(f).get("providers", [])
    dash_dirs = [p.get("options", {}).get("path") for p in providers]
    check(any(d in graf_mounts and os.path.exists(os.path.join(graf_mounts[d], "ffe.json")) for d in dash_dirs),
          "the dashboard provider's path is not a mount holding ffe.json")

    # Every published port binds 127.0.0.1 only.
    for name, svc in services.items():
        for p in svc.get("ports", []):
            host_ip = p.get("host_ip") if isinstance(p, dict) else str(p).split(":")[0]
            check(host_ip == "127.0.0.1", f"{name} publishes {p} beyond 127.0.0.1")
    # Named volumes for the data.
    for vol in ("kafka-data", "postgres-data", "ffe-data", "prometheus-data", "grafana-data"):
        check(vol in (config.get("volumes") or {}), f"volume {vol} is not declared")

    # The Dockerfile: multi-stage from Debian 12, the setup script, non-root, /readyz healthcheck.
    with open(os.path.join(COMPOSE_DIR, "Dockerfile")) as f:
        dockerfile = f.read()
    froms = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
    check(len(froms) >= 2, "compose/Dockerfile is not multi-stage")
    check(all(re.match(r"debian:12(\b|-|$)", f) for f in froms), "compose/Dockerfile does not build from debian:12")
    check("scripts/setup.sh" in dockerfile, "compose/Dockerfile does not install with scripts/setup.sh")
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    check(users and users[-1] not in ("root", "0", "0:0"), "compose/Dockerfile's final stage runs as root")
    check(re.search(r"^HEALTHCHECK .*?/readyz", dockerfile, re.M | re.S) is not None,
          "compose/Dockerfile has no HEALTHCHECK on /readyz")

    if failures:
        print("\n".join(failures))
        return 1
    print(f"compose: {len(services)} services wired: bootstrap {bootstrap}, ffe http :{ffe_port}, "
          f"analytics -> postgres, prometheus -> ffe:{ffe_port}/metrics, grafana -> prometheus:{prom_port}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
