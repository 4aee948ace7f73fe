#!/usr/bin/env python3
"""Checks the Kubernetes manifests under deploy/kubernetes without a cluster.

No cluster can run on the machines this project is tested on, so this checks what can be checked:
1. the kustomization renders (`kubectl kustomize`) and every resource passes
   `kubernetes-validate --strict` (offline schemas: unknown fields are errors);
2. invariants across files that a schema cannot see: every environment variable is one the
   binaries read (taken from their own `--help`), ports agree between listen addresses, container
   ports, Services and the balancer's upstream names (BALANCER_UPSTREAMS, or the `servers` of the
   config file its ConfigMap holds), the config file is mounted as a directory (a subPath mount never
   sees a ConfigMap update) and passes `balancer check-config`, probe paths are routes the binaries serve,
   grace periods outlast the lame-duck delay plus the drain, image names are the ones
   `docker compose build` produces, every pod is non-root, read-only, capability-free, seccomp
   RuntimeDefault with requests and limits, and the NetworkPolicies fence Redis and the app.

`--self-test` breaks each invariant in a copy of the rendered manifests and fails unless the
check notices, so the check itself cannot silently pass everything.

Usage: check_kubernetes.py APP_BINARY BALANCER_BINARY [--self-test]
"""

import copy
import posixpath
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"


def render():
    out = subprocess.run(
        ["kubectl", "kustomize", str(MANIFESTS)], check=True, capture_output=True, text=True
    ).stdout
    return out, [doc for doc in yaml.safe_load_all(out) if doc]


def validate_schemas(rendered):
    path = Path("/tmp") / "visit-counter-k8s-rendered.yaml"
    path.write_text(rendered)
    result = subprocess.run(
        ["kubernetes-validate", "--strict", "--quiet", str(path)], capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.exit(f"kubernetes-validate --strict failed:\n{result.stdout}{result.stderr}")


def env_names_of(binary):
    """Every upper-case `[env: NAME=` a binary's --help lists."""
    text = subprocess.run([binary, "--help"], check=True, capture_output=True, text=True).stdout
    return set(re.findall(r"\[env: ([A-Z0-9_]+)", text))


def find(docs, kind, name):
    for doc in docs:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise KeyError(f"no {kind}/{name}")


def pod_spec(workload):
    return workload["spec"]["template"]["spec"]


def container(workload):
    return pod_spec(workload)["containers"][0]


def env_of(workload):
    return {e["name"]: e.get("value") for e in container(workload).get("env", [])}


def seconds(duration):
    match = re.fullmatch(r"(\d+)(ms|s|m)", duration)
    if not match:
        raise ValueError(f"cannot read duration {duration!r}")
    number, unit = int(match[1]), match[2]
    return {"ms": number / 1000, "s": number, "m": number * 60}[unit]


def port_of(listen):
    return int(listen.rsplit(":", 1)[1])


def container_ports(workload):
    return {p["name"]: p["containerPort"] for p in container(workload)["ports"]}


def check_env(docs, known, problems):
    for name in ("app", "balancer"):
        unknown = set(env_of(find(docs, "Deployment", name))) - known[name]
        if unknown:
            problems.append(f"{name}: variables the binary does not read: {sorted(unknown)}")


def check_ports(docs, problems):
    app, balancer = find(docs, "Deployment", "app"), find(docs, "Deployment", "balancer")
    app_env, bal_env = env_of(app), env_of(balancer)
    if port_of(app_env["APP_LISTEN"]) != container_ports(app)["http"]:
        problems.append("app: APP_LISTEN's port is not the container port `http`")
    if port_of(bal_env["BALANCER_LISTEN"]) != container_ports(balancer)["http"]:
        problems.append("balancer: BALANCER_LISTEN's port is not the container port `http`")
    if port_of(bal_env["BALANCER_ADMIN_LISTEN"]) != container_ports(balancer)["admin"]:
        problems.append("balancer: BALANCER_ADMIN_LISTEN's port is not the container port `admin`")
    for server in balancer_servers(docs, problems):
        host, port = server.rsplit(":", 1)
        try:
            service = find(docs, "Service", host)
        except KeyError:
            problems.append(f"balancer upstream {server}: no Service {host}")
            continue
        if service["spec"].get("clusterIP") != "None":
            problems.append(f"Service {host} must be headless so DNS answers with every pod")
        if int(port) not in [p["port"] for p in service["spec"]["ports"]]:
            problems.append(f"balancer upstream port {port} is not a port of Service {host}")
    redis = find(docs, "Service", app_env["REDIS_HOST"])
    if int(app_env["REDIS_PORT"]) not in [p["port"] for p in redis["spec"]["ports"]]:
        problems.append("REDIS_PORT is not a port of the redis Service")
    for svc in (d for d in docs if d["kind"] == "Service"):
        workload = workload_for(docs, svc["spec"]["selector"])
        names = container_ports(workload)
        for p in svc["spec"]["ports"]:
            if p["targetPort"] not in names:
                problems.append(f"Service {svc['metadata']['name']}: no container port {p['targetPort']}")


def config_file(docs, problems):
    """The text of the file BALANCER_CONFIG names, from the ConfigMap mounted at its directory
    (None when the balancer has no BALANCER_CONFIG, or when the mount is wrong: a problem)."""
    balancer = find(docs, "Deployment", "balancer")
    env = env_of(balancer)
    path = env.get("BALANCER_CONFIG")
    if path is None:
        return None
    if env.get("BALANCER_UPSTREAMS"):
        problems.append("balancer: BALANCER_CONFIG and BALANCER_UPSTREAMS together exit 2")
    directory, name = posixpath.split(path)
    mounts = [m for m in container(balancer).get("volumeMounts", []) if m["mountPath"] == directory]
    if len(mounts) != 1:
        problems.append(f"balancer: no volume mounted at {directory}, BALANCER_CONFIG's directory")
        return None
    if "subPath" in mounts[0]:
        problems.append("balancer: the config is mounted with subPath, which never sees a ConfigMap update")
    volume = next((v for v in pod_spec(balancer).get("volumes", []) if v["name"] == mounts[0]["name"]), {})
    config_map = volume.get("configMap", {}).get("name")
    if config_map is None:
        problems.append(f"balancer: the volume at {directory} is not a ConfigMap")
        return None
    text = find(docs, "ConfigMap", config_map).get("data", {}).get(name)
    if text is None:
        problems.append(f"ConfigMap {config_map} has no key {name}")
    return text


def balancer_servers(docs, problems):
    """Every `host:port` the balancer sends to: BALANCER_UPSTREAMS, or the config file's servers."""
    env = env_of(find(docs, "Deployment", "balancer"))
    if "BALANCER_CONFIG" not in env:
        upstreams = env.get("BALANCER_UPSTREAMS") or ""
        if not upstreams:
            problems.append("balancer: neither BALANCER_UPSTREAMS nor BALANCER_CONFIG is set")
        return [u.strip() for u in upstreams.split(",") if u.strip()]
    text = config_file(docs, problems)
    if text is None:
        return []
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        problems.append(f"balancer config file: {e}")
        return []
    return [server for group in config.get("upstream", []) for server in group.get("servers", [])]


def check_config_file(docs, balancer_binary, problems):
    """`balancer check-config` on the file the ConfigMap holds, when the binary has the command."""
    text = config_file(docs, [])
    if text is None or balancer_binary is None:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "balancer.toml"
        path.write_text(text)
        result = subprocess.run([balancer_binary, "check-config", str(path)], capture_output=True, text=True)
    if result.returncode != 0:
        problems.append(f"balancer check-config refused the ConfigMap's file: {result.stdout}{result.stderr}".strip())


def workload_for(docs, selector):
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            if doc["spec"]["template"]["metadata"]["labels"].items() >= selector.items():
                return doc
    raise KeyError(f"no workload for selector {selector}")


def check_probes(docs, routes, problems):
    for name, route_set in routes.items():
        c = container(find(docs, "Deployment", name))
        for probe in ("readinessProbe", "livenessProbe"):
            path = c.get(probe, {}).get("httpGet", {}).get("path")
            if path is not None and path not in route_set:
                problems.append(f"{name}: {probe} path {path} is not a route it serves")
        if "readinessProbe" not in c or "livenessProbe" not in c:
            problems.append(f"{name}: needs both a readiness and a liveness probe")


def check_grace(docs, problems):
    app = find(docs, "Deployment", "app")
    env = env_of(app)
    needed = seconds(env["SHUTDOWN_DELAY"]) + seconds(env["DRAIN_TIMEOUT"])
    if pod_spec(app)["terminationGracePeriodSeconds"] <= needed:
        problems.append(f"app: grace period must exceed SHUTDOWN_DELAY + DRAIN_TIMEOUT ({needed} s)")
    balancer = find(docs, "Deployment", "balancer")
    needed = seconds(env_of(balancer)["BALANCER_SHUTDOWN_TIMEOUT"])
    if pod_spec(balancer)["terminationGracePeriodSeconds"] <= needed:
        problems.append(f"balancer: grace period must exceed BALANCER_SHUTDOWN_TIMEOUT ({needed} s)")


def compose_images():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    project = compose["name"]
    return {name: f"{project}-{name}" for name, svc in compose["services"].items() if "build" in svc}


def check_images(docs, problems):
    for name, image in compose_images().items():
        got = container(find(docs, "Deployment", name))["image"].split(":")[0]
        if got != image:
            problems.append(f"{name}: image {got} is not what `docker compose build` makes ({image})")


def check_hardening(docs, problems):
    for w in (d for d in docs if d["kind"] in ("Deployment", "StatefulSet")):
        name, spec, c = w["metadata"]["name"], pod_spec(w), container(w)
        pod_sec, sec = spec.get("securityContext", {}), c.get("securityContext", {})
        if not pod_sec.get("runAsNonRoot"):
            problems.append(f"{name}: not runAsNonRoot")
        if pod_sec.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{name}: seccomp is not RuntimeDefault")
        if not sec.get("readOnlyRootFilesystem"):
            problems.append(f"{name}: root file system is writable")
        if sec.get("capabilities", {}).get("drop") != ["ALL"] or sec.get("allowPrivilegeEscalation"):
            problems.append(f"{name}: capabilities not all dropped")
        res = c.get("resources", {})
        if not res.get("requests") or not res.get("limits"):
            problems.append(f"{name}: needs resource requests and limits")


def check_fences(docs, problems):
    def allowed_sources(target):
        for d in docs:
            if d["kind"] == "NetworkPolicy" and d["spec"]["podSelector"]["matchLabels"] == target:
                return [s["podSelector"].get("matchLabels") for r in d["spec"]["ingress"] for s in r.get("from", [])]
        return None

    redis = allowed_sources({"app.kubernetes.io/name": "redis"})
    if redis != [{"app.kubernetes.io/name": "app"}]:
        problems.append(f"Redis must be reachable from app pods only, policy allows {redis}")
    app = allowed_sources({"app.kubernetes.io/name": "app"})
    if app != [{"app.kubernetes.io/name": "balancer"}]:
        problems.append(f"the app must be reachable from balancer pods only, policy allows {app}")
    if not any(d["kind"] == "PodDisruptionBudget" and d["metadata"]["name"] == "app" for d in docs):
        problems.append("the app needs a PodDisruptionBudget")


def routes_from_readme():
    """The app's routes (its README table) and the balancer's admin routes."""
    text = (ROOT / "README.md").read_text()
    app_routes = set(re.findall(r"^\| `(/[a-z/]*)` \|", text, re.M))
    return {"app": app_routes, "balancer": {"/", "/status", "/metrics"}}


def problems_in(docs, known, routes, balancer_binary=None):
    problems = []
    for check in (check_ports, check_grace, check_images, check_hardening, check_fences):
        check(docs, problems)
    check_config_file(docs, balancer_binary, problems)
    check_env(docs, known, problems)
    check_probes(docs, routes, problems)
    return problems


def breakages():
    """Each entry breaks one invariant in place; the check must notice every one."""

    def app(docs):
        return find(docs, "Deployment", "app")

    def bal(docs):
        return find(docs, "Deployment", "balancer")

    return {
        "unknown variable": lambda d: container(app(d))["env"].append({"name": "APP_PORTT", "value": "1"}),
        "listen port": lambda d: container(app(d))["ports"][0].update(containerPort=5001),
        "probe path": lambda d: container(app(d))["readinessProbe"]["httpGet"].update(path="/healthz"),
        "short grace": lambda d: pod_spec(app(d)).update(terminationGracePeriodSeconds=10),
        "balancer grace": lambda d: pod_spec(bal(d)).update(terminationGracePeriodSeconds=30),
        "image": lambda d: container(bal(d)).update(image="balancer:latest"),
        "root": lambda d: pod_spec(app(d))["securityContext"].update(runAsNonRoot=False),
        "writable": lambda d: container(bal(d))["securityContext"].update(readOnlyRootFilesystem=False),
        "no limits": lambda d: container(app(d))["resources"].pop("limits"),
        "upstream port": lambda d: find(d, "ConfigMap", "balancer-config")["data"].update(
            {"balancer.toml": find(d, "ConfigMap", "balancer-config")["data"]["balancer.toml"].replace(
                '"app:5000"', '"app:5001"')}
        ),
        "config subPath": lambda d: container(bal(d))["volumeMounts"][0].update(subPath="balancer.toml"),
        "config and upstreams": lambda d: container(bal(d))["env"].append(
            {"name": "BALANCER_UPSTREAMS", "value": "app:5000"}
        ),
        "open redis": lambda d: find(d, "NetworkPolicy", "redis-from-app-only")["spec"]["ingress"][0][
            "from"
        ].append({"podSelector": {}}),
    }


def self_test(docs, known, routes, balancer_binary):
    missed = []
    for name, breaks in breakages().items():
        broken = copy.deepcopy(docs)
        breaks(broken)
        if not problems_in(broken, known, routes, balancer_binary):
            missed.append(name)
    if missed:
        sys.exit(f"self-test: the check did not notice: {missed}")
    print(f"self-test: all {len(breakages())} broken copies were refused")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    known = {"app": env_names_of(sys.argv[1]), "balancer": env_names_of(sys.argv[2])}
    rendered, docs = render()
    validate_schemas(rendered)
    routes = routes_from_readme()
    # A binary without check-config (before the config file): only the file's TOML and servers.
    help_text = subprocess.run([sys.argv[2], "--help"], check=True, capture_output=True, text=True).stdout
    balancer_binary = sys.argv[2] if "check-config" in help_text else None
    problems = problems_in(docs, known, routes, balancer_binary)
    if problems:
        sys.exit("deploy/kubernetes:\n  " + "\n  ".join(problems))
    print(f"deploy/kubernetes: {len(docs)} resources pass kubernetes-validate --strict and the invariants")
    if "--self-test" in sys.argv:
        self_test(docs, known, routes, balancer_binary)


if __name__ == "__main__":
    main()
