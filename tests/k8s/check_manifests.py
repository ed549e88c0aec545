#!/usr/bin/env python3
"""Checks the Kubernetes manifests in k8s/ without a cluster (ctest k8s.manifests).

1. Kinds defined by a CRD (MPIJob, PodMonitor, PrometheusRule) against the CRD's
   spec.versions[].schema.openAPIV3Schema from ../shared/k8s-schemas (not copied into the project;
   without that folder the test says so and exits 77, a skip). The schema is made strict first:
   an object that lists its properties and does not preserve unknown fields refuses others, as the
   API server's pruning would silently drop them. A deliberately misspelled copy of each manifest
   must fail, so the strictness is tested too.
2. Built-in kinds (ConfigMap, PersistentVolumeClaim), and the MPIJob's pod templates as Pods,
   with `kubernetes-validate --strict` (offline, bundled upstream schemas).
3. What the mpi-operator's own validation adds to its CRD (pkg/apis/kubeflow/validation in
   kubeflow/mpi-operator v2): replicas set, one launcher, restartPolicy Never or OnFailure,
   cleanPodPolicy None, Running or All, slotsPerWorker and sshAuthMountPath set, worker host names
   that are DNS labels.
4. That the files agree with each other and with trainguard: GPUs = slots, one metrics port per
   local rank at metrics-port + r, the PodMonitor's ports, selector and job label, the volumes and
   claims, the config file's keys and values (read by the trainguard binary, $TG_TEST_BIN), the
   entrypoints that k8s/Dockerfile installs, the variables the ranks need on the launcher (mpirun
   starts the ranks over ssh: the workers' environment does not reach them).
5. The NetworkPolicies (k8s/networkpolicy.yaml): no CRD schema is needed, they are a built-in
   kind, which kubernetes-validate --strict checks (2.). Here: they select the MPIJob's pods and
   allow every port the job uses (read from k8s/mpijob.yaml and the ConfigMap) from the peers that
   use it, and DNS; a copy without the liveness port must fail this check.

Run by tests/k8s/with_tools.sh (the tools venv: pyyaml, jsonschema, kubernetes-validate).
"""
import copy
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
SCHEMAS = ROOT.parent / "shared" / "k8s-schemas"
SKIP = 77
MANIFESTS = ["mpijob.yaml", "configmap.yaml", "pvc.yaml", "podmonitor.yaml", "prometheusrule.yaml",
             "networkpolicy.yaml"]


class CheckFailed(Exception):
    """A check failed; the message names the file and the field."""


def load_manifests():
    """[(file name, document)] of every YAML document in k8s/."""
    docs = []
    for name in MANIFESTS:
        path = K8S / name
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((name, doc))
    return docs


def the(docs, kind):
    """The one (file, document) of `kind`."""
    found = [(f, d) for f, d in docs if d.get("kind") == kind]
    if len(found) != 1:
        raise CheckFailed(f"k8s/: expected one {kind}, found {len(found)}")
    return found[0]


# --- 1. CRD kinds ------------------------------------------------------------------------------


def load_crd_schemas():
    """{(group, version, kind): openAPIV3Schema} of every CRD in ../shared/k8s-schemas."""
    schemas = {}
    for path in sorted(SCHEMAS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        spec = crd["spec"]
        for version in spec["versions"]:
            schemas[(spec["group"], version["name"], spec["names"]["kind"])] = version["schema"]["openAPIV3Schema"]
    return schemas


def strict(schema):
    """A copy of an OpenAPI v3 schema that refuses unknown fields and knows `nullable`."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def schema_errors(schema, doc):
    """Messages of every place where `doc` breaks `schema`, each with its path."""
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}" for e in errors]


def schema_of(doc, schemas, where):
    group, _, version = doc.get("apiVersion", "").rpartition("/")
    key = (group, version, doc.get("kind"))
    if key not in schemas:
        raise CheckFailed(f"{where}: no CRD in {SCHEMAS} serves {doc.get('apiVersion')} {doc.get('kind')}")
    return strict(schemas[key])


def is_crd_kind(doc, schemas):
    group, _, version = doc.get("apiVersion", "").rpartition("/")
    return (group, version, doc.get("kind")) in schemas


def check_crd_kinds(docs, schemas):
    checked = set()
    for name, doc in docs:
        if not is_crd_kind(doc, schemas):
            continue  # a built-in kind (or an unknown one: kubernetes-validate refuses it)
        where = f"k8s/{name} {doc['kind']} {doc['metadata']['name']}"
        errors = schema_errors(schema_of(doc, schemas, where), doc)
        if errors:
            raise CheckFailed(f"{where} does not match its CRD schema:\n  " + "\n  ".join(errors))
        print(f"ok: {where} matches its CRD schema (strict)")
        checked.add(doc["kind"])
    if checked != {"MPIJob", "PodMonitor", "PrometheusRule"}:
        raise CheckFailed(f"k8s/: expected an MPIJob, a PodMonitor and a PrometheusRule of served CRD versions, "
                          f"checked {sorted(checked)}")


# Misspellings that the strict schema must refuse: (kind, path to a mapping, bad key, value).
TYPOS = [
    ("MPIJob", ["spec"], "slotsPerWorkr", 8),
    ("MPIJob", ["spec", "runPolicy"], "backofLimit", 3),
    ("MPIJob", ["spec", "mpiReplicaSpecs", "Worker", "template", "spec", "containers", 0], "imagePullPolicyy", "Always"),
    ("MPIJob", ["spec", "mpiReplicaSpecs", "Worker", "template", "spec", "containers", 0, "resources"], "limitz", {}),
    ("PodMonitor", ["spec", "podMetricsEndpoints", 0], "honorLabel", True),
    ("PrometheusRule", ["spec", "groups", 0, "rules", 0], "annotation", {}),
]


def check_typos_fail(docs, schemas):
    for kind, path, key, value in TYPOS:
        name, doc = the(docs, kind)
        bad = copy.deepcopy(doc)
        target = bad
        for step in path:
            target = target[step]
        target[key] = value
        where = f"k8s/{name} with {'.'.join(map(str, path))}.{key}"
        if not schema_errors(schema_of(bad, schemas, where), bad):
            raise CheckFailed(f"{where}: a misspelled field passed the strict schema check")
    # A wrong type, too.
    name, doc = the(docs, "MPIJob")
    bad = copy.deepcopy(doc)
    bad["spec"]["slotsPerWorker"] = "8"
    if not schema_errors(schema_of(bad, schemas, name), bad):
        raise CheckFailed(f"k8s/{name}: slotsPerWorker as a string passed the schema check")
    print(f"ok: {len(TYPOS)} misspelled fields and a wrong type are refused")


# --- 2. Built-in kinds -------------------------------------------------------------------------


def kubernetes_validate(docs, tmp):
    """Runs kubernetes-validate --strict on `docs`; returns (exit code, output)."""
    path = Path(tmp) / f"builtin-{len(docs)}.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    run = subprocess.run(["kubernetes-validate", "--strict", str(path)], capture_output=True, text=True)
    return run.returncode, run.stdout + run.stderr


def pods_of(mpijob):
    """The MPIJob's pod templates as Pods, for the upstream Pod schema."""
    pods = []
    for role, replica in mpijob["spec"]["mpiReplicaSpecs"].items():
        template = copy.deepcopy(replica["template"])
        meta = template.get("metadata", {})
        meta["name"] = f"{mpijob['metadata']['name']}-{role.lower()}"
        pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": template["spec"]})
    return pods


def check_builtin(docs, schemas, tmp):
    builtin = [d for _, d in docs if not is_crd_kind(d, schemas)]
    builtin += pods_of(the(docs, "MPIJob")[1])
    code, out = kubernetes_validate(builtin, tmp)
    passed = out.count(" passed for resource ")
    if code != 0 or passed != len(builtin) or "ERROR" in out:
        raise CheckFailed(f"kubernetes-validate --strict refused k8s/ built-in kinds (exit {code}):\n{out}")
    print(f"ok: {len(builtin)} built-in objects pass kubernetes-validate --strict "
          f"({', '.join(sorted({d['kind'] for d in builtin}))})")
    bad = copy.deepcopy(builtin[0])
    bad["metadataa"] = bad.pop("metadata")
    code, out = kubernetes_validate([bad], tmp)
    if code == 0:
        raise CheckFailed(f"kubernetes-validate --strict accepted a misspelled field:\n{out}")
    print("ok: kubernetes-validate --strict refuses a misspelled field")


# --- 3. The mpi-operator's validation ------------------------------------------------------------

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def check_operator_rules(docs):
    name, job = the(docs, "MPIJob")
    spec = job["spec"]
    where = f"k8s/{name}"
    problems = []
    specs = spec.get("mpiReplicaSpecs", {})
    if set(specs) != {"Launcher", "Worker"}:
        problems.append(f"mpiReplicaSpecs: {sorted(specs)} instead of Launcher and Worker")
    for role, replica in specs.items():
        if "replicas" not in replica:
            problems.append(f"mpiReplicaSpecs.{role}.replicas: missing")
        if replica.get("restartPolicy", "Never") not in ("Never", "OnFailure"):
            problems.append(f"mpiReplicaSpecs.{role}.restartPolicy: {replica['restartPolicy']} (Never or OnFailure)")
        if not replica.get("template", {}).get("spec", {}).get("containers"):
            problems.append(f"mpiReplicaSpecs.{role}.template.spec.containers: none")
    if specs.get("Launcher", {}).get("replicas") != 1:
        problems.append("mpiReplicaSpecs.Launcher.replicas: must be 1")
    if spec.get("runPolicy", {}).get("cleanPodPolicy", "Running") not in ("None", "Running", "All"):
        problems.append(f"runPolicy.cleanPodPolicy: {spec['runPolicy']['cleanPodPolicy']}")
    if not spec.get("slotsPerWorker") or not spec.get("sshAuthMountPath"):
        problems.append("slotsPerWorker and sshAuthMountPath must be set")
    workers = specs.get("Worker", {}).get("replicas", 1)
    host = f"{job['metadata']['name']}-worker-{workers - 1}"
    if len(host) > 63 or not DNS_LABEL.match(host):
        problems.append(f"metadata.name: worker host name {host} is not a DNS label")
    if problems:
        raise CheckFailed(f"{where} breaks the mpi-operator's validation:\n  " + "\n  ".join(problems))
    print(f"ok: {where} passes the mpi-operator's own validation rules")


# --- 4. Consistency --------------------------------------------------------------------------------


def container(job, role):
    return job["spec"]["mpiReplicaSpecs"][role]["template"]["spec"]["containers"][0]


def config_of(docs):
    name, cm = the(docs, "ConfigMap")
    text = cm["data"]["trainguard.toml"]
    return name, cm, text, tomllib.loads(text)


def check_slots_and_ports(docs, config):
    name, job = the(docs, "MPIJob")
    slots = job["spec"]["slotsPerWorker"]
    worker = container(job, "Worker")
    gpus = {k: worker["resources"].get(k, {}).get("nvidia.com/gpu") for k in ("limits", "requests")}
    if gpus["limits"] != slots:
        raise CheckFailed(f"k8s/{name}: Worker resources.limits nvidia.com/gpu {gpus['limits']} != slotsPerWorker {slots}")
    base = config["metrics-port"]
    want = {f"metrics-{r}": base + r for r in range(slots)}
    have = {p["name"]: p["containerPort"] for p in worker.get("ports", []) if p["name"].startswith("metrics")}
    if have != want:
        raise CheckFailed(f"k8s/{name}: Worker ports {have} != one per local rank at metrics-port + r: {want}")
    if config.get("metrics-bind") != "0.0.0.0":
        raise CheckFailed("k8s/configmap.yaml: metrics-bind must be 0.0.0.0 for Prometheus to reach the pods")
    pm_name, pm = the(docs, "PodMonitor")
    ports = [e.get("port") for e in pm["spec"]["podMetricsEndpoints"]]
    if sorted(ports) != sorted(want) or not all(e.get("honorLabels") for e in pm["spec"]["podMetricsEndpoints"]):
        raise CheckFailed(f"k8s/{pm_name}: podMetricsEndpoints ports {ports} (honorLabels on each) != {sorted(want)}")
    labels = job["spec"]["mpiReplicaSpecs"]["Worker"]["template"]["metadata"]["labels"]
    selector = pm["spec"]["selector"]["matchLabels"]
    if any(labels.get(k) != v for k, v in selector.items()):
        raise CheckFailed(f"k8s/{pm_name}: selector {selector} does not match the worker labels {labels}")
    # One identity per MPIJob: the operator's job-name pod label is the PodMonitor's job label,
    # and the launcher hands the same label to every rank as TRAINGUARD_METRICS_JOB.
    job_name_label = "training.kubeflow.org/job-name"
    if pm["spec"].get("jobLabel") != job_name_label:
        raise CheckFailed(f"k8s/{pm_name}: jobLabel is {pm['spec'].get('jobLabel')!r}, not {job_name_label}")
    if "metrics-job" in config:
        raise CheckFailed("k8s/configmap.yaml: metrics-job is set, which wins over the MPIJob's name")
    launcher = job["spec"]["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in launcher.get("env", [])}
    source = env.get("TRAINGUARD_METRICS_JOB", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
    if source != f"metadata.labels['{job_name_label}']":
        raise CheckFailed(f"k8s/{name}: the launcher's TRAINGUARD_METRICS_JOB comes from {source!r}, "
                          f"not the pod label {job_name_label}")
    # trainguard-launch passes the launcher's NCCL_*, TRAINGUARD_* and CUDA_* variables to the
    # ranks (tests/k8s/check_entrypoints.sh); the same variables on a worker never reach a rank.
    on_workers = [e["name"] for e in container(job, "Worker").get("env", [])
                  if re.match(r"(NCCL|TRAINGUARD|CUDA)_", e["name"])]
    if on_workers:
        raise CheckFailed(f"k8s/{name}: {on_workers} are set on the workers, whose environment the ranks "
                          "(started over ssh) do not get: set them on the launcher")
    print(f"ok: {slots} slots = {slots} GPUs = ports {base}-{base + slots - 1} = the PodMonitor's endpoints")


def mounts_of(job, role):
    spec = job["spec"]["mpiReplicaSpecs"][role]["template"]["spec"]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    return {m["mountPath"]: (m, volumes.get(m["name"])) for m in spec["containers"][0].get("volumeMounts", [])}


def check_volumes(docs, config):
    name, job = the(docs, "MPIJob")
    mounts = mounts_of(job, "Worker")
    claims = {d["metadata"]["name"] for _, d in docs if d["kind"] == "PersistentVolumeClaim"}
    for path, (mount, volume) in mounts.items():
        if volume is None:
            raise CheckFailed(f"k8s/{name}: Worker mounts volume {mount['name']} at {path}, which is not defined")
        claim = volume.get("persistentVolumeClaim", {}).get("claimName")
        if claim and claim not in claims:
            raise CheckFailed(f"k8s/{name}: volume {mount['name']} claims {claim}, not in k8s/pvc.yaml ({sorted(claims)})")
    shm = mounts.get("/dev/shm")
    if not shm or shm[1].get("emptyDir", {}).get("medium") != "Memory":
        raise CheckFailed(f"k8s/{name}: Worker needs /dev/shm as an emptyDir with medium Memory (NCCL)")
    for key in ("checkpoint", "bundle-dir", "run-config", "label-report"):
        value = config.get(key, "")
        shared = [p for p, (_, v) in mounts.items() if value.startswith(p + "/") and "persistentVolumeClaim" in v]
        if not shared:
            raise CheckFailed(f"k8s/configmap.yaml: {key} = {value!r} is not on a volume claim mounted by the workers")
    # trainguard does not make the checkpoint's folder (a missing one is exit 4): the init
    # container must.
    init = job["spec"]["mpiReplicaSpecs"]["Worker"]["template"]["spec"].get("initContainers", [])
    made = {Path(a) for c in init if c.get("command", [])[:2] == ["mkdir", "-p"] for a in c["command"][2:]}
    made |= {p for m in list(made) for p in m.parents}
    for folder in (Path(config["checkpoint"]).parent, Path(config["bundle-dir"])):
        if folder not in made:
            raise CheckFailed(f"k8s/{name}: no Worker init container makes {folder} (`mkdir -p`), which "
                              f"k8s/configmap.yaml's checkpoint or bundle-dir needs")
    cm_name = the(docs, "ConfigMap")[1]["metadata"]["name"]
    config_path = config_argument(job)
    mount = mounts.get(str(Path(config_path).parent))
    if not mount or mount[1].get("configMap", {}).get("name") != cm_name:
        raise CheckFailed(f"k8s/{name}: --config {config_path} is not in the ConfigMap {cm_name} mounted by the workers")
    print("ok: volumes, claims, /dev/shm and the config file's paths agree")


def config_argument(job):
    args = container(job, "Launcher").get("args", [])
    if "--config" not in args:
        raise CheckFailed("k8s/mpijob.yaml: the launcher's command line has no --config FILE")
    return args[args.index("--config") + 1]


def check_restart_policy(docs, config):
    name, job = the(docs, "MPIJob")
    spec = job["spec"]
    launcher = container(job, "Launcher")
    if launcher.get("command") != ["/usr/local/bin/trainguard-launch"] or launcher["args"][0] != "mpirun":
        raise CheckFailed(f"k8s/{name}: the launcher must run mpirun through /usr/local/bin/trainguard-launch "
                          "(SIGTERM -> SIGUSR1, permanent exit codes)")
    if container(job, "Worker").get("command") != ["/usr/local/bin/trainguard-worker"]:
        raise CheckFailed(f"k8s/{name}: the workers must run sshd through /usr/local/bin/trainguard-worker")
    if spec["mpiReplicaSpecs"]["Launcher"].get("restartPolicy") != "OnFailure" or not spec["runPolicy"].get("backoffLimit"):
        raise CheckFailed(f"k8s/{name}: the launcher needs restartPolicy OnFailure and a backoffLimit to be retried")
    grace = {r: spec["mpiReplicaSpecs"][r]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
             for r in ("Launcher", "Worker")}
    if grace["Launcher"] < grace["Worker"] or grace["Worker"] < 60:
        raise CheckFailed(f"k8s/{name}: terminationGracePeriodSeconds {grace}: the workers need time for a "
                          "checkpoint (>= 60 s) and the launcher must outlive them")
    if config.get("resume") != "auto" or not config.get("checkpoint"):
        raise CheckFailed("k8s/configmap.yaml: a restarted launcher reruns the same command: it needs checkpoint "
                          "and resume = \"auto\"")
    dockerfile = (K8S / "Dockerfile").read_text()
    for script, target in (("trainguard-launch.sh", "trainguard-launch"), ("trainguard-worker.sh", "trainguard-worker")):
        if not re.search(rf"^COPY k8s/{script} /usr/local/bin/{target}$", dockerfile, re.M):
            raise CheckFailed(f"k8s/Dockerfile does not install k8s/{script} as /usr/local/bin/{target}")
    print(f"ok: restart policy, grace periods {grace}, resume = auto and the entrypoints agree")


# --- 5. NetworkPolicy ------------------------------------------------------------------------------


def job_ports(docs, config):
    """[(what, peer component, protocol, port)]: every port a pod of the job listens on, by the
    component (worker, launcher) that connects to it, from k8s/mpijob.yaml and the ConfigMap."""
    name, job = the(docs, "MPIJob")
    env = {e["name"]: e.get("value") for e in container(job, "Launcher").get("env", [])}
    need = ["TRAINGUARD_STORE_PORT", "TRAINGUARD_LIVENESS_PORT", "OMPI_MCA_oob_tcp_static_ipv4_ports",
            "OMPI_MCA_btl_tcp_port_min_v4", "OMPI_MCA_btl_tcp_port_range_v4"]
    missing = [n for n in need if not str(env.get(n) or "").isdigit()]
    if missing:
        raise CheckFailed(f"k8s/{name}: the launcher does not pin {missing} (a port number each): a "
                          "NetworkPolicy cannot allow a port the kernel picks")
    ssh = {p["name"]: p["containerPort"] for p in container(job, "Worker")["ports"]}["ssh"]
    oob = int(env["OMPI_MCA_oob_tcp_static_ipv4_ports"])
    btl = int(env["OMPI_MCA_btl_tcp_port_min_v4"])
    ports = [("ssh (tree spawn)", "worker", "TCP", ssh), ("ssh (mpirun)", "launcher", "TCP", ssh),
             ("TCPStore", "worker", "TCP", int(env["TRAINGUARD_STORE_PORT"])),
             ("liveness hub", "worker", "UDP", int(env["TRAINGUARD_LIVENESS_PORT"])),
             ("OpenMPI out-of-band", "worker", "TCP", oob), ("OpenMPI out-of-band", "launcher", "TCP", oob)]
    ports += [("OpenMPI TCP transport", "worker", "TCP", p)
              for p in range(btl, btl + int(env["OMPI_MCA_btl_tcp_port_range_v4"]))]
    ports += [(f"metrics-{r}", "prometheus", "TCP", config["metrics-port"] + r) for r in range(job["spec"]["slotsPerWorker"])]
    return ports


def allows(rules, peer_key, peer_test, protocol, port):
    """Whether a rule of `rules` (ingress or egress) lets a peer that passes `peer_test` reach
    `port` over `protocol`; peer_key is "from" or "to"."""
    for rule in rules or []:
        if not any(peer_test(p) for p in rule.get(peer_key, [])):
            continue
        for p in rule.get("ports", []):
            low = p.get("port")
            if p.get("protocol", "TCP") == protocol and isinstance(low, int) and low <= port <= p.get("endPort", low):
                return True
    return False


def check_network_policy(docs, config):
    name, job = the(docs, "MPIJob")
    policies = [d for f, d in docs if d["kind"] == "NetworkPolicy"]
    job_label = "training.kubeflow.org/job-name"

    def component(selector):
        labels = (selector or {}).get("matchLabels", {})
        if labels.get(job_label) != job["metadata"]["name"]:
            return None
        return labels.get("app.kubernetes.io/component")

    by_component = {}
    for policy in policies:
        which = component(policy["spec"]["podSelector"])
        if which is None or set(policy["spec"].get("policyTypes", [])) != {"Ingress", "Egress"}:
            raise CheckFailed(f"k8s/networkpolicy.yaml {policy['metadata']['name']}: selects no pod of the MPIJob "
                              f"{job['metadata']['name']} by {job_label}, or does not govern both directions")
        by_component[which] = policy["spec"]
    for role in ("Launcher", "Worker"):
        labels = job["spec"]["mpiReplicaSpecs"][role]["template"]["metadata"]["labels"]
        if labels.get("app.kubernetes.io/component") not in by_component:
            raise CheckFailed(f"k8s/networkpolicy.yaml: no policy selects the {role} pods ({labels})")
    is_job = lambda comp: lambda peer: "namespaceSelector" not in peer and component(peer.get("podSelector")) == comp
    is_prometheus = lambda peer: "namespaceSelector" in peer and "podSelector" in peer
    is_dns = lambda peer: peer.get("podSelector", {}).get("matchLabels", {}).get("k8s-app") == "kube-dns"
    problems = []
    for what, peer, protocol, port in job_ports(docs, config):
        # The listener: a worker, but for the out-of-band port, which mpirun (launcher) and every
        # daemon (workers) listen on.
        servers = ["worker"] + (["launcher"] if what == "OpenMPI out-of-band" and peer == "worker" else [])
        for server in servers:
            peer_test = is_prometheus if peer == "prometheus" else is_job(peer)
            if not allows(by_component[server].get("ingress"), "from", peer_test, protocol, port):
                problems.append(f"{server} ingress from {peer}: {what} {protocol} {port}")
            if peer != "prometheus" and not allows(by_component[peer].get("egress"), "to", is_job(server), protocol, port):
                problems.append(f"{peer} egress to {server}: {what} {protocol} {port}")
    for comp, spec in by_component.items():
        for protocol in ("UDP", "TCP"):
            if not allows(spec.get("egress"), "to", is_dns, protocol, 53):
                problems.append(f"{comp} egress: DNS {protocol} 53")
    if problems:
        raise CheckFailed("k8s/networkpolicy.yaml does not allow ports the job uses:\n  " + "\n  ".join(problems))
    return len(job_ports(docs, config))


def check_network_policies(docs, config):
    count = check_network_policy(docs, config)
    # The check must catch a missing port: the same policies without the liveness hub's UDP port.
    bad = copy.deepcopy(docs)
    for _, doc in bad:
        if doc["kind"] != "NetworkPolicy":
            continue
        for rule in doc["spec"].get("ingress", []) + doc["spec"].get("egress", []):
            rule["ports"] = [p for p in rule.get("ports", []) if p.get("protocol") != "UDP" or p.get("port") == 53]
    try:
        check_network_policy(bad, config)
    except CheckFailed:
        pass
    else:
        raise CheckFailed("k8s/networkpolicy.yaml without the liveness port passed the NetworkPolicy check")
    print(f"ok: the NetworkPolicies select the MPIJob's pods and allow its {count} ports and DNS; "
          "one without the liveness port is refused")


def check_config_with_trainguard(text, tmp):
    """The ConfigMap's file, read by the real trainguard: it must get past its configuration
    (unknown keys and bad values exit 2) and stop at the dataset, which is not here (exit 3)."""
    binary = os.environ.get("TG_TEST_BIN")
    if not binary:
        raise CheckFailed("TG_TEST_BIN is not set: run through ctest (or set it to build/launcher/trainguard)")
    path = Path(tmp) / "trainguard.toml"
    path.write_text(text)
    missing = Path(tmp) / "no-such-dataset"
    cmd = [binary, "train", "--config", str(path), "--data-dir", str(missing), "--eval-dir", str(missing),
           "--metrics-port", "0", "--metrics-bind", "127.0.0.1", "--run-config", str(Path(tmp) / "run.toml"),
           "--label-report", str(Path(tmp) / "labels.json"), "--checkpoint", str(Path(tmp) / "ck"),
           "--bundle-dir", str(Path(tmp) / "faults")]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp,
                         env={k: v for k, v in os.environ.items() if not k.startswith("TRAINGUARD_")})
    if run.returncode != 3:
        raise CheckFailed(f"k8s/configmap.yaml: trainguard train --config exited {run.returncode}, expected 3 "
                          f"(config read, dataset missing):\n{run.stdout}{run.stderr}")
    print("ok: trainguard reads k8s/configmap.yaml's trainguard.toml (stops at the missing dataset: exit 3)")


def main():
    if not SCHEMAS.is_dir():
        print(f"SKIPPED: {SCHEMAS} is absent: the CRD schemas (MPIJob, PodMonitor, PrometheusRule) are read "
              "from ../shared/k8s-schemas beside the repository; nothing was checked")
        return SKIP
    docs = load_manifests()
    schemas = load_crd_schemas()
    _, _, text, config = config_of(docs)
    with tempfile.TemporaryDirectory(prefix="tg-k8s-") as tmp:
        try:
            check_crd_kinds(docs, schemas)
            check_typos_fail(docs, schemas)
            check_builtin(docs, schemas, tmp)
            check_operator_rules(docs)
            check_slots_and_ports(docs, config)
            check_volumes(docs, config)
            check_restart_policy(docs, config)
            check_network_policies(docs, config)
            check_config_with_trainguard(text, tmp)
        except CheckFailed as e:
            print(f"FAILED: {e}")
            return 1
    print("all manifest checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
