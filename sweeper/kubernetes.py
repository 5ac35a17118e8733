"""Kubernetes Indexed Jobs of workers: the manifest `sweeper submit NAME --kubernetes` writes, as YAML."""

from __future__ import annotations

import dataclasses
import hashlib
import re

import yaml

from storage.contract.errors import BadInput
from sweeper.submit import TIME, Submission

INVALID = re.compile(r"[^a-z0-9-]+")  # characters kept out of a DNS-1123 label (after lowercasing)
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]{1,253}")
MEM_UNITS = {"K": "Ki", "M": "Mi", "G": "Gi", "T": "Ti"}  # Slurm's units are powers of 1024
INDEX_ANNOTATION = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
ARTIFACTS = "/artifacts"
BAD_INPUT_EXIT = 2  # what a worker exits with on a user mistake: retrying the same pod cannot help
SLURM_ONLY = (("setup", "--setup", "run those lines in the image (its Dockerfile or entrypoint)"),
              ("extra", "--sbatch", "set the Job's fields in the manifest instead"),
              ("partition", "--partition", "choose nodes with a nodeSelector in the manifest instead"),
              ("account", "--account", "Kubernetes has no accounts; use a namespace (--namespace)"),
              ("python", "--python", "the image's `sweeper` command runs the workers"))


def manifest(sub: Submission, *, image: str, secret: str = "sweeper-storage", secret_key: str = "url",
             claim: str | None = "sweeper-artifacts", namespace: str | None = None) -> str:
    """The YAML of one `batch/v1` Indexed Job whose `sub.workers` pods each run `sweeper worker NAME`.

    Parameters
    ----------
    sub : Submission
        The request; its Slurm-only fields (setup, extra, partition, account, python) must be left unset.
    image : str
        The container image, with `sweeper` installed and on PATH.
    secret, secret_key : str
        The Secret, and its key, that hold the storage URL (given to the workers as $SWEEPER_STORAGE);
        the URL itself is never written in the manifest.
    claim : str or None
        The PersistentVolumeClaim mounted at /artifacts for checkpoints and kept weights (ReadWriteMany
        when workers run on several nodes); None: no volume, nothing kept.
    namespace : str or None
        The Job's namespace; None: kubectl's current one.

    Returns
    -------
    str
        A comment header that says how to apply it, then the Job as YAML.

    Raises
    ------
    BadInput
        An empty image, an invalid Kubernetes name, or a Slurm-only field of `sub` given.
    """
    check(sub, image=image, secret=secret, secret_key=secret_key, claim=claim, namespace=namespace)
    name = job_name(sub.name)
    metadata = {"name": name, **({"namespace": namespace} if namespace else {}), "labels": labels(name),
                "annotations": {"sweeper/study-name": sub.name}}
    pod = {"restartPolicy": "Never", "terminationGracePeriodSeconds": 60,
           "containers": [container(sub, image, secret, secret_key, claim)]}
    deadline = seconds(sub.time) if sub.time else 0
    if deadline:  # per pod, as Slurm's --time is per task (the Job's own deadline would cover every wave)
        pod["activeDeadlineSeconds"] = deadline
    if claim is not None:
        pod["volumes"] = [{"name": "artifacts", "persistentVolumeClaim": {"claimName": claim}}]
    spec = {"completionMode": "Indexed", "completions": sub.workers,
            "parallelism": sub.parallel or sub.workers, "backoffLimitPerIndex": 3,
            "podFailurePolicy": failure_policy(),
            "template": {"metadata": {"labels": labels(name)}, "spec": pod}}
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}
    return header(sub, secret, secret_key, claim, namespace) + yaml.safe_dump(job, sort_keys=False)


def check(sub: Submission, *, image: str, secret: str, secret_key: str, claim: str | None,
          namespace: str | None) -> None:
    """BadInput unless the image is given, Kubernetes takes the names and no Slurm-only field is set."""
    if not image or not image.strip():
        raise BadInput("no container image: give one that has sweeper installed, e.g. --image reg/sweeper:1")
    defaults = {f.name: f.default for f in dataclasses.fields(Submission)}
    for attribute, flag, fix in SLURM_ONLY:
        value = getattr(sub, attribute)
        if value and value != defaults[attribute]:
            raise BadInput(f"{flag} is Slurm-only: drop it for --kubernetes; {fix}")
    names = (("Secret", secret, DNS_SUBDOMAIN, "lowercase letters, digits, '-' and '.'"),
             ("PersistentVolumeClaim", claim, DNS_SUBDOMAIN, "lowercase letters, digits, '-' and '.'"),
             ("namespace", namespace, DNS_LABEL, "at most 63 lowercase letters, digits and '-'"),
             ("Secret key", secret_key, SECRET_KEY, "letters, digits, '-', '_' and '.'"))
    for what, value, pattern, allowed in names:
        if value is not None and not pattern.fullmatch(value):
            raise BadInput(f"{what} {value!r} is not a valid Kubernetes name: use {allowed}")


def job_name(study: str) -> str:
    """`sweeper-<study>` as a DNS-1123 label (≤ 63 characters), plus a hash of `study` if that changed it."""
    base = INVALID.sub("-", f"sweeper-{study}".lower())
    if base == f"sweeper-{study}" and DNS_LABEL.fullmatch(base):
        return base
    suffix = "-" + hashlib.sha256(study.encode()).hexdigest()[:6]  # two studies that look alike stay apart
    return base[:63 - len(suffix)].rstrip("-") + suffix


def labels(name: str) -> dict[str, str]:
    """The labels of the Job and its pods (`name` is already a valid label value)."""
    return {"app.kubernetes.io/name": "sweeper", "sweeper/study": name}


def container(sub: Submission, image: str, secret: str, secret_key: str, claim: str | None) -> dict:
    """The one container: `sweeper worker NAME --worker-index <the pod's completion index> ...`."""
    command = ["sweeper", "worker", escape(sub.name), "--worker-index", "$(JOB_COMPLETION_INDEX)",
               *map(escape, sub.worker_args)]
    env = [{"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {"fieldPath": INDEX_ANNOTATION}}},
           {"name": "SWEEPER_STORAGE", "valueFrom": {"secretKeyRef": {"name": secret, "key": secret_key}}}]
    box = {"name": "worker", "image": image, "command": command, "env": env, "resources": resources(sub)}
    if claim is not None:
        env.append({"name": "SWEEPER_ARTIFACTS", "value": ARTIFACTS})
        box["volumeMounts"] = [{"name": "artifacts", "mountPath": ARTIFACTS}]
    return box


def escape(arg: str) -> str:
    """`arg` with each '$' doubled, so that Kubernetes' $(VAR) expansion leaves it as it is."""
    return arg.replace("$", "$$")


def resources(sub: Submission) -> dict:
    """Requests and limits of one worker: its cores, its memory if given, its GPUs if any."""
    amounts = {"cpu": str(sub.cpus), **({"memory": memory(sub.mem)} if sub.mem else {})}
    gpus = {"nvidia.com/gpu": str(sub.gpus)} if sub.gpus else {}
    return {"requests": dict(amounts), "limits": {**amounts, **gpus}}


def memory(mem: str) -> str:
    """Slurm's --mem (megabytes, or a number with K, M, G or T) as a Kubernetes quantity: 4G -> 4Gi."""
    number, unit = (mem[:-1], mem[-1]) if mem[-1] in MEM_UNITS else (mem, "M")
    if not number.isdigit():
        raise BadInput(f"--mem {mem!r}: use megabytes or a number with K, M, G or T, e.g. 4G")
    return number + MEM_UNITS[unit]


def seconds(time: str) -> int:
    """Slurm's --time (MIN, MIN:SEC, H:M:S, D-H, D-H:M or D-H:M:S) in seconds; 0 means no limit."""
    if not TIME.fullmatch(time):
        raise BadInput(f"--time {time!r}: use Slurm's form, e.g. 90 (minutes), 2:00:00 or 1-12:00:00")
    days, _, clock = time.rpartition("-")
    parts = [int(part) for part in clock.split(":")]
    if days:  # D-H, D-H:M, D-H:M:S
        hours, minutes, secs = (parts + [0, 0])[:3]
    elif len(parts) == 3:  # H:M:S
        hours, minutes, secs = parts
    else:  # MIN, MIN:SEC
        hours, minutes, secs = 0, parts[0], (parts[1] if len(parts) == 2 else 0)
    return ((int(days or 0) * 24 + hours) * 60 + minutes) * 60 + secs


def failure_policy() -> dict:
    """Evictions and preemptions are no failures; a worker's exit 2 (a user mistake) is not retried."""
    evicted = {"type": "DisruptionTarget", "status": "True"}
    mistake = {"containerName": "worker", "operator": "In", "values": [BAD_INPUT_EXIT]}
    return {"rules": [{"action": "Ignore", "onPodConditions": [evicted]},
                      {"action": "FailIndex", "onExitCodes": mistake}]}


def header(sub: Submission, secret: str, secret_key: str, claim: str | None, namespace: str | None) -> str:
    """The comment lines above the manifest: what it runs and how to apply it."""
    ns = f" -n {namespace}" if namespace else ""
    lines = [f"Workers of sweeper study {sub.name!r}:",
             "each pod of this Indexed Job runs one `sweeper worker`, which pulls the study's trials from",
             "its database until the budget is spent or `sweeper stop`.",
             "A pod stopped early leaves its trial to another worker, which resumes it from its checkpoint.",
             "Apply it (the storage URL stays in the Secret, reachable from the pods):",
             f"  kubectl{ns} create secret generic {secret} \\",
             f"    --from-literal={secret_key}=postgresql://USER:PASSWORD@HOST/DB",
             f"  kubectl{ns} apply -f -  # with this manifest on its stdin"]
    if claim is not None:
        lines.append(f"The PersistentVolumeClaim {claim!r} must exist (ReadWriteMany if pods share no node).")
    return "".join(f"# {line}\n" for line in lines)
