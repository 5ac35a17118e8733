"""The Job manifest of `sweeper submit --kubernetes`, read back by the official Kubernetes client's models."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from kubernetes import client

from storage.contract.errors import BadInput
from sweeper import kubernetes
from sweeper.submit import Submission

URL = "postgresql://sweeper:s3cr3t-pw@db.example:5432/studies"
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
INDEX = "metadata.annotations['batch.kubernetes.io/job-completion-index']"


def typed(text: str):
    """The manifest as a V1Job through the client's own deserializer; it must serialize back to the same
    document (the deserializer drops keys it does not know, so a misspelled field would make them differ)."""
    doc = yaml.safe_load(text)
    api = client.ApiClient()
    job = api.deserialize(json.dumps(doc), "V1Job", "application/json")
    assert isinstance(job, client.V1Job)
    assert api.sanitize_for_serialization(job) == doc
    return job


def env_of(job) -> dict:
    """The worker container's env vars by name."""
    return {var.name: var for var in job.spec.template.spec.containers[0].env}


def test_a_gpu_submission_is_an_indexed_job_of_workers_that_read_the_url_from_a_secret():
    sub = Submission("blog", URL, workers=8, parallel=3, gpus=2, cpus=4, mem="16G", time="1-12:30:00",
                     backend="numba")
    text = kubernetes.manifest(sub, image="registry.example/sweeper:1.2", secret="db", secret_key="dsn",
                               namespace="ml")
    job = typed(text)
    assert (job.api_version, job.kind) == ("batch/v1", "Job")
    assert (job.metadata.name, job.metadata.namespace) == ("sweeper-blog", "ml")
    assert job.spec.completion_mode == "Indexed"
    assert (job.spec.completions, job.spec.parallelism) == (8, 3)
    assert 1 <= job.spec.backoff_limit_per_index <= 5
    pod = job.spec.template.spec
    assert pod.restart_policy == "Never" and pod.termination_grace_period_seconds >= 30
    assert pod.active_deadline_seconds == ((24 + 12) * 60 + 30) * 60
    (box,) = pod.containers
    assert (box.name, box.image) == ("worker", "registry.example/sweeper:1.2")
    assert box.command == ["sweeper", "worker", "blog", "--worker-index", "$(JOB_COMPLETION_INDEX)",
                           "--threads", "4", "--device", "cuda", "--backend", "numba"]
    env = env_of(job)
    assert env["JOB_COMPLETION_INDEX"].value_from.field_ref.field_path == INDEX
    ref = env["SWEEPER_STORAGE"].value_from.secret_key_ref
    assert (ref.name, ref.key, env["SWEEPER_STORAGE"].value) == ("db", "dsn", None)
    assert box.resources.limits == {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "2"}
    assert box.resources.requests == {"cpu": "4", "memory": "16Gi"}
    assert env["SWEEPER_ARTIFACTS"].value == "/artifacts"
    assert [(m.name, m.mount_path) for m in box.volume_mounts] == [("artifacts", "/artifacts")]
    claims = [(volume.name, volume.persistent_volume_claim.claim_name) for volume in pod.volumes]
    assert claims == [("artifacts", "sweeper-artifacts")]
    assert "kubectl -n ml create secret generic db" in text and "--from-literal=dsn=" in text


def test_a_cpu_submission_asks_for_no_gpu_and_without_a_claim_mounts_nothing():
    job = typed(kubernetes.manifest(Submission("cpu-only", URL, workers=5), image="sweeper:dev", claim=None))
    assert (job.spec.completions, job.spec.parallelism) == (5, 5)
    (box,) = job.spec.template.spec.containers
    assert box.resources.limits == {"cpu": "1"} and box.resources.requests == {"cpu": "1"}
    assert "--device" not in box.command and box.volume_mounts is None
    assert job.spec.template.spec.volumes is None and "SWEEPER_ARTIFACTS" not in env_of(job)
    assert job.spec.template.spec.active_deadline_seconds is None and job.metadata.namespace is None


def test_the_storage_url_and_its_password_are_nowhere_in_the_manifest():
    sub = Submission("blog", URL, workers=2, gpus=1, mem="4G", time="2:00:00")
    text = kubernetes.manifest(sub, image="i")
    assert URL not in text and "s3cr3t-pw" not in text and "db.example" not in text
    assert env_of(typed(text))["SWEEPER_STORAGE"].value_from.secret_key_ref.name == "sweeper-storage"


def test_a_long_odd_study_name_gives_a_valid_dns_name_and_stays_whole_in_an_annotation():
    study = "Blog.L2 study_with_a_very_long_name" * 3
    job = typed(kubernetes.manifest(Submission(study, URL, workers=1), image="i"))
    name = job.metadata.name
    assert DNS_LABEL.fullmatch(name) and name.startswith("sweeper-blog-l2-study")
    for labels in (job.metadata.labels, job.spec.template.metadata.labels):
        assert labels["app.kubernetes.io/name"] == "sweeper"
        assert all(LABEL_VALUE.fullmatch(value) for value in labels.values())
        assert labels["sweeper/study"] == name
    assert job.metadata.annotations["sweeper/study-name"] == study
    assert job.spec.template.spec.containers[0].command[2] == study
    assert kubernetes.job_name(study + "x") != name  # cut at the same place, told apart by the hash
    assert kubernetes.job_name("Blog") != kubernetes.job_name("blog") == "sweeper-blog"
    assert kubernetes.job_name("a-") != "sweeper-a-" and DNS_LABEL.fullmatch(kubernetes.job_name("a-"))


def test_a_dollar_in_the_study_name_is_not_expanded_by_kubernetes():
    job = typed(kubernetes.manifest(Submission("a$(HOME)b$$", URL, workers=1), image="i"))
    assert job.spec.template.spec.containers[0].command[2] == "a$$(HOME)b$$$$"


@pytest.mark.parametrize("time,seconds", [("90", 5400), ("5:30", 330), ("2:00:00", 7200), ("1:02:03", 3723),
                                          ("2-3", 183600), ("1-2:30", 95400), ("1-0:0:1", 86401), ("0", 0)])
def test_slurm_time_limits_in_seconds(time, seconds):
    assert kubernetes.seconds(time) == seconds


def test_a_time_of_zero_is_slurms_no_limit_and_sets_no_deadline():
    job = typed(kubernetes.manifest(Submission("s", URL, workers=1, time="0"), image="i"))
    assert job.spec.template.spec.active_deadline_seconds is None


@pytest.mark.parametrize("mem,quantity", [("4G", "4Gi"), ("512M", "512Mi"), ("2048", "2048Mi"),
                                          ("64K", "64Ki"), ("1T", "1Ti")])
def test_slurm_memory_as_kubernetes_quantities(mem, quantity):
    assert kubernetes.memory(mem) == quantity
    pod = typed(kubernetes.manifest(Submission("s", URL, workers=1, mem=mem), image="i")).spec.template.spec
    assert pod.containers[0].resources.limits["memory"] == quantity


@pytest.mark.parametrize("given,options,word", [
    ({}, {"image": ""}, "image"), ({}, {"image": "  "}, "image"),
    ({"setup": ("module load cuda",)}, {}, "--setup"), ({"extra": ("--qos=long",)}, {}, "--sbatch"),
    ({"python": "/opt/venv/bin/python"}, {}, "--python"), ({"partition": "gpu"}, {}, "--partition"),
    ({"account": "lab"}, {}, "--account"), ({}, {"namespace": "ML_team"}, "namespace"),
    ({}, {"secret": "My Secret"}, "Secret"), ({}, {"claim": "-x"}, "PersistentVolumeClaim"),
])
def test_what_kubernetes_cannot_take_is_a_one_line_bad_input(given, options, word):
    sub = Submission("s", URL, workers=1, **given)
    with pytest.raises(BadInput, match=re.escape(word)) as caught:
        kubernetes.manifest(sub, **{"image": "i", **options})
    assert "\n" not in str(caught.value)


def test_sweeper_submit_kubernetes_dry_run_prints_the_manifest_of_a_study(pg_url, tmp_path):
    """The CLI end to end: the study must exist; the manifest is the module's, for the given options."""
    from tests.clitools import one_line, sweeper_cli
    from tests.sweeper.test_slurm import create

    create(pg_url, "blog.l2")
    args = ["submit", "blog.l2", "--kubernetes", "--storage", pg_url, "--workers", 6, "--parallel", 2,
            "--gpus-per-worker", 1, "--image", "ghcr.io/lab/sweeper:1", "--namespace", "ml"]
    done = sweeper_cli(*args, "--dry-run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    job = typed(done.stdout)
    assert (job.spec.completions, job.spec.parallelism, job.metadata.namespace) == (6, 2, "ml")
    assert job.spec.template.spec.containers[0].image == "ghcr.io/lab/sweeper:1"
    assert "127.0.0.1" not in done.stdout  # the URL comes from the Secret
    one_line(sweeper_cli(*args, cwd=tmp_path), "only writes the manifest", "--dry-run")
    one_line(sweeper_cli(args[0], "nope", *args[2:], "--dry-run", cwd=tmp_path), "no study 'nope'")
    one_line(sweeper_cli(*args, "--setup", "module load x", "--dry-run", cwd=tmp_path), "--setup is Slurm-only")
