"""Run rendered Kubernetes pod specs on Docker, as a kubelet would start them.

No cluster exists here. This driver takes a container of a rendered Deployment, StatefulSet or
Job and starts it with exactly its image, command, args, environment (envFrom ConfigMaps, env,
$(VAR) expansion), ports, user and group, read-only root filesystem, dropped capabilities,
no-new-privileges, projected Secrets as read-only files and emptyDirs as tmpfs mounts. Service
names become network aliases on one Docker network, so `db`, `mlflow` and `serving` resolve as
in the namespace. Probes are the rendered ones, run from the host against the published port
(httpGet) or inside the container (exec). What it does not model: scheduling, resource limits,
NetworkPolicies.
"""

from __future__ import annotations

import base64
import json
import re
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.containers.stack import DOCKER, sh

Doc = dict[str, Any]


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion (unknown references stay as they are)."""
    return re.sub(
        r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), value
    )


@dataclass
class Cluster:
    docs: list[Doc]
    name: str
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="kube-driver-")))
    started: list[str] = field(default_factory=list)
    # workload -> uid: where a local stand-in image has its user under another uid than the
    # official image the manifests name (see the caller).
    uid_overrides: dict[str, int] = field(default_factory=dict)

    @property
    def network(self) -> str:
        return f"{self.name}-net"

    def find(self, kind: str, name: str) -> Doc:
        return next(d for d in self.docs if d["kind"] == kind and d["metadata"]["name"] == name)

    def _prefixed(self, kind: str, name: str) -> Doc:
        """A generated object by its name before kustomize added the hash suffix."""
        return next(d for d in self.docs if d["kind"] == kind and d["metadata"]["name"] == name)

    def environment(self, container: Doc) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            env.update(self._prefixed("ConfigMap", source["configMapRef"]["name"]).get("data", {}))
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = expand(item["value"], env)
            else:
                ref = item["valueFrom"]["configMapKeyRef"]
                env[item["name"]] = self._prefixed("ConfigMap", ref["name"])["data"][ref["key"]]
        return env

    def _volume_args(self, pod: Doc, container: Doc, uid: int) -> list[str]:
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        args: list[str] = []
        for mount in container.get("volumeMounts", []):
            volume = volumes.get(mount["name"])
            target = mount["mountPath"]
            if volume is None:  # a volumeClaimTemplate: a fresh, writable directory
                args += ["--mount", f"type=tmpfs,destination={target},tmpfs-mode=0777"]
            elif "emptyDir" in volume:
                # A kubelet's emptyDir is writable by the pod (mode 0777, group fsGroup). This
                # engine ignores a tmpfs mode, so the directory belongs to the pod's user.
                group = pod.get("securityContext", {}).get("fsGroup", uid)
                options = f"rw,exec,nosuid,nodev,mode=1777,uid={uid},gid={group}"
                args += ["--tmpfs", f"{target}:{options}"]
            elif "projected" in volume or "configMap" in volume:
                folder = self.workdir / f"{pod.get('_name')}-{mount['name']}"
                folder.mkdir(parents=True, exist_ok=True)
                if "projected" in volume:
                    for source in volume["projected"]["sources"]:
                        secret = self._prefixed("Secret", source["secret"]["name"])
                        for item in source["secret"]["items"]:
                            path = folder / item["path"]
                            path.write_bytes(base64.b64decode(secret["data"][item["key"]]))
                            path.chmod(0o444)
                else:
                    data = self._prefixed("ConfigMap", volume["configMap"]["name"])["data"]
                    for key, value in data.items():
                        (folder / key).write_text(value)
                        (folder / key).chmod(0o444)
                folder.chmod(0o755)
                args += ["-v", f"{folder}:{target}:ro"]
            else:
                raise AssertionError(f"volume kind not modelled: {volume}")
        return args

    def start(self, kind: str, name: str, aliases: tuple[str, ...] = ()) -> Pod:
        doc = self.find(kind, name)
        pod = dict(doc["spec"]["template"]["spec"])
        pod["_name"] = name
        container = pod["containers"][0]
        pod_security = pod.get("securityContext", {})
        security = {**pod_security, **container.get("securityContext", {})}
        uid, gid = (
            int(security["runAsUser"]),
            int(security.get("runAsGroup", security["runAsUser"])),
        )
        if name in self.uid_overrides:
            uid = gid = self.uid_overrides[name]
        env = self.environment(container)
        cname = f"{self.name}-{name}"
        args = [DOCKER, "run", "-d", "--name", cname, "--network", self.network,
                "--user", f"{uid}:{gid}", "--security-opt", "no-new-privileges"]  # fmt: skip
        for group in [pod_security.get("fsGroup")] if pod_security.get("fsGroup") else []:
            args += ["--group-add", str(group)]
        if security.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        for capability in security.get("capabilities", {}).get("drop", []):
            args += ["--cap-drop", capability]
        for alias in aliases:
            args += ["--network-alias", alias]
        for port in container.get("ports", []):
            args += ["-p", f"127.0.0.1::{port['containerPort']}"]
        for key, value in env.items():
            args += ["-e", f"{key}={value}"]
        args += self._volume_args(pod, container, uid)
        command = [expand(c, env) for c in container.get("command", [])]
        if command:
            args += ["--entrypoint", command[0]]
        args.append(container["image"])
        args += command[1:] + [expand(a, env) for a in container.get("args", [])]
        sh(*args, timeout=120)
        self.started.append(cname)
        return Pod(self, cname, container)

    @contextmanager
    def running(self) -> Iterator[Cluster]:
        sh(DOCKER, "network", "create", self.network, timeout=60)
        try:
            yield self
        finally:
            for cname in reversed(self.started):
                sh(DOCKER, "rm", "-f", "-v", cname, check=False, timeout=120)
            sh(DOCKER, "network", "rm", self.network, check=False, timeout=60)


@dataclass
class Pod:
    cluster: Cluster
    cname: str
    container: Doc

    def host_port(self, port: int | str) -> int:
        if isinstance(port, str):
            port = next(p["containerPort"] for p in self.container["ports"] if p["name"] == port)
        out = sh(DOCKER, "port", self.cname, f"{port}/tcp", timeout=30).stdout
        return int(out.strip().splitlines()[0].rsplit(":", 1)[1])

    def logs(self) -> str:
        done = sh(DOCKER, "logs", "--tail", "80", self.cname, check=False, timeout=30)
        return done.stdout + done.stderr

    def state(self) -> dict[str, Any]:
        out = sh(DOCKER, "inspect", "-f", "{{json .State}}", self.cname, timeout=30).stdout
        return dict(json.loads(out))

    def probe(self, kind: str) -> tuple[bool, str]:
        """One run of the rendered probe: (passed, what it answered)."""
        spec = self.container[kind]
        timeout = int(spec.get("timeoutSeconds", 1))
        if "httpGet" in spec:
            url = f"http://127.0.0.1:{self.host_port(spec['httpGet']['port'])}{spec['httpGet']['path']}"
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    return 200 <= response.status < 400, response.read().decode()
            except urllib.error.HTTPError as exc:
                return False, f"{exc.code} {exc.read().decode()}"
            except (urllib.error.URLError, OSError) as exc:
                return False, repr(exc)
        if "exec" in spec:
            done = sh(DOCKER, "exec", self.cname, *spec["exec"]["command"], check=False, timeout=30)
            return done.returncode == 0, done.stdout + done.stderr
        if "tcpSocket" in spec:
            done = sh(DOCKER, "exec", self.cname, "true", check=False, timeout=30)
            return done.returncode == 0, ""
        raise AssertionError(spec)

    def wait_for(self, kind: str, budget: float | None = None) -> str:
        """Poll the probe at its period until it passes, within the rendered budget (period x
        failureThreshold) unless `budget` says otherwise."""
        spec = self.container[kind]
        period = float(spec.get("periodSeconds", 10))
        limit = budget or period * int(spec.get("failureThreshold", 3)) + float(
            spec.get("initialDelaySeconds", 0)
        )
        deadline = time.monotonic() + limit
        answer = ""
        while time.monotonic() < deadline:
            if not self.state()["Running"]:
                raise AssertionError(f"{self.cname} exited: {self.state()}\n{self.logs()}")
            ok, answer = self.probe(kind)
            if ok:
                return answer
            time.sleep(min(period, 2))
        raise AssertionError(f"{self.cname}: {kind} never passed ({answer})\n{self.logs()}")

    def wait_exit(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state()
            if not state["Running"]:
                return int(state["ExitCode"])
            time.sleep(1)
        raise AssertionError(f"{self.cname} still running after {timeout} s\n{self.logs()}")
