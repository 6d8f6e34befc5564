"""Wiring of the Terraform module in terraform/.

Providers cannot be downloaded here, so `terraform validate` cannot run; these tests parse the module with
python-hcl2 and check what validate would not catch either: that the pieces point at each other.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest

from function.settings import OIDC_AUDIENCE_VARIABLE, OIDC_CERTS_VARIABLE, OIDC_INVOKERS_VARIABLE
from tests.support import log_lines, logfilter

ROOT = Path(__file__).resolve().parent.parent
MODULE = ROOT / "terraform"
MAIN_PY = ROOT / "main.py"

Body = dict[str, Any]

# Only the prefixes of providers this module uses, so that dotted words in filters and docs never count.
_RESOURCE_REF = re.compile(r"\b(data\.|ephemeral\.)?((?:google|random|archive|time)_[a-z0-9_]+)\.([a-z_][a-z0-9_-]*)")
_VAR_REF = re.compile(r"\bvar\.([A-Za-z_][A-Za-z0-9_-]*)")
_LOCAL_REF = re.compile(r"\blocal\.([A-Za-z_][A-Za-z0-9_-]*)")
_SA_REF = re.compile(r"\$\{google_service_account\.([a-z0-9_]+)\.(?:email|name|id|member)\}")
_ROLE = re.compile(r"roles/[A-Za-z0-9_.]+")


def _unquote(key: str) -> str:
    # Older python-hcl2 releases keep the quotes around block labels.
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == '"' else key


def _normalise(node: Any) -> Any:
    if isinstance(node, dict):
        return {_unquote(k): _normalise(v) for k, v in node.items() if not k.startswith("__")}
    if isinstance(node, list):
        return [_normalise(v) for v in node]
    return node


@cache
def _module() -> dict[str, list[Body]]:
    options = hcl2.SerializationOptions(
        strip_string_quotes=True, explicit_blocks=False, with_comments=False, preserve_heredocs=False
    )
    merged: dict[str, list[Body]] = {}
    for path in sorted(MODULE.glob("*.tf")):
        with path.open() as handle:
            parsed = _normalise(hcl2.load(handle, serialization_options=options))
        for key, blocks in parsed.items():
            merged.setdefault(key, []).extend(blocks)
    return merged


def _labelled(kind: str) -> dict[str, dict[str, Body]]:
    """`resource`, `data` or `ephemeral` blocks as {type: {name: body}}."""
    out: dict[str, dict[str, Body]] = {}
    for entry in _module().get(kind, []):
        for rtype, named in entry.items():
            for name, body in named.items():
                assert name not in out.setdefault(rtype, {}), f"{kind} {rtype}.{name} declared twice"
                out[rtype][name] = body
    return out


def resources(rtype: str) -> dict[str, Body]:
    return _labelled("resource").get(rtype, {})


def resource(rtype: str, name: str) -> Body:
    found = resources(rtype)
    assert name in found, f"resource {rtype}.{name} is missing"
    return found[name]


def variables() -> dict[str, Body]:
    return {name: body for entry in _module().get("variable", []) for name, body in entry.items()}


def locals_() -> dict[str, Any]:
    return {name: value for entry in _module().get("locals", []) for name, value in entry.items()}


def default(variable: str) -> Any:
    declared = variables()
    assert variable in declared, f"variable {variable} is not declared"
    return declared[variable].get("default")


def block(body: Body, name: str) -> Body:
    """The single nested block `name` of a resource body."""
    nested = body.get(name)
    assert isinstance(nested, list), f"block {name} is missing"
    assert len(nested) == 1, f"expected one {name} block, found {len(nested)}"
    result: Body = nested[0]
    return result


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)


def text(node: Any) -> str:
    # Heredocs come back with their quotes escaped.
    return "\n".join(strings(node)).replace('\\"', '"')


def service_account(expression: str) -> str | None:
    match = _SA_REF.search(expression)
    return match.group(1) if match else None


# sync_index's queued rebuilds run in a second, private deployment of the same entry point.
REBUILD = "rebuild"


def function_by_entry_point(entry_point: str) -> tuple[str, Body]:
    """The deployment that takes the entry point's own requests (for sync_index: GitHub's and the resync)."""
    found = [
        (name, body)
        for name, body in resources("google_cloudfunctions2_function").items()
        if block(body, "build_config").get("entry_point") == entry_point and name != REBUILD
    ]
    assert len(found) == 1, f"expected one function with entry point {entry_point}, found {found}"
    return found[0]


def roles_of(body: Body) -> set[str]:
    """Every role a binding grants, literal or in a for_each set."""
    return set(_ROLE.findall(text(body)))


# ---------------------------------------------------------------------------------------------------------
# Module hygiene
# ---------------------------------------------------------------------------------------------------------


def test_module_is_formatted() -> None:
    terraform = shutil.which("terraform") or "/usr/local/bin/terraform"
    if not Path(terraform).exists():
        pytest.skip("terraform binary not installed")
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(MODULE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_variable_used_is_declared_and_every_declared_is_used() -> None:
    declared = set(variables())
    # A variable's own validation block does not count as a use; comments are not parsed at all.
    outside_variables = {key: value for key, value in _module().items() if key != "variable"}
    used = {name for expression in strings(outside_variables) for name in _VAR_REF.findall(expression)}
    assert used - declared == set(), "used but not declared"
    assert declared - used == set(), "declared but never used"
    for name, body in variables().items():
        assert body.get("description"), f"variable {name} has no description"
        assert body.get("type"), f"variable {name} has no type"


def test_every_local_and_resource_reference_resolves() -> None:
    # `moved` blocks name addresses that no longer exist by design; test_moved_blocks_land_on_resources checks them.
    module = {key: value for key, value in _module().items() if key != "moved"}
    defined_locals = set(locals_())
    by_prefix = {
        prefix: {(rtype, name) for rtype, named in _labelled(kind).items() for name in named}
        for prefix, kind in (("", "resource"), ("data.", "data"), ("ephemeral.", "ephemeral"))
    }
    used_locals: set[str] = set()
    for expression in strings(module):
        used_locals.update(_LOCAL_REF.findall(expression))
        for prefix, rtype, name in _RESOURCE_REF.findall(expression):
            assert (rtype, name) in by_prefix[prefix], f"{expression!r} refers to undeclared {prefix}{rtype}.{name}"
    assert used_locals - defined_locals == set(), "locals used but not defined"
    assert defined_locals - used_locals == set(), "locals defined but never used"


def test_nothing_project_specific_is_hard_coded() -> None:
    assert default("project") is None, "project must be supplied by the operator"
    for kind in ("resource", "data"):
        for rtype, named in _labelled(kind).items():
            for name, body in named.items():
                if "project" in body:
                    assert body["project"].startswith("${"), f"{rtype}.{name} hard-codes its project"
    everything = "\n".join(path.read_text() for path in MODULE.glob("*.tf"))
    # The frozen legacy registries, the promoter's signing identity and its signing registry are
    # registry.k8s.io's own, each named once as the default of its variable.
    own = re.sub(r'variable "(frozen_prefixes|signers|signing_registry)" \{.*?\n\}\n', "", everything, flags=re.S)
    assert "k8s-artifacts-prod" not in own
    assert not re.search(r"\b[a-z0-9-]+@[a-z0-9-]+\.iam\.gserviceaccount\.com", own)


# ---------------------------------------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------------------------------------


def _main_py_functions() -> dict[str, ast.FunctionDef]:
    if not MAIN_PY.exists():
        pytest.fail("main.py is missing: the Terraform entry points have nothing to match")
    tree = ast.parse(MAIN_PY.read_text(), filename=str(MAIN_PY))
    return {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}


def _decorator_names(node: ast.FunctionDef) -> set[str]:
    names: set[str] = set()
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute):
            names.add(target.attr)
        elif isinstance(target, ast.Name):
            names.add(target.id)
    return names


def test_entry_points_match_main_py() -> None:
    entry_points = {
        block(body, "build_config")["entry_point"] for body in resources("google_cloudfunctions2_function").values()
    }
    assert entry_points == {"audit", "sync_index", "sweep"}
    defined = _main_py_functions()
    assert entry_points <= set(defined), f"main.py defines no top-level {entry_points - set(defined)}"


def test_audit_is_registered_as_a_cloudevent_function() -> None:
    # The audit function is deployed without an Eventarc trigger (the push subscription carries the
    # dead-letter policy), so only the decorator makes the Functions Framework treat it as a CloudEvent
    # function and convert the Pub/Sub push body.
    defined = _main_py_functions()
    assert "audit" in defined
    assert "cloud_event" in _decorator_names(defined["audit"]), "main.audit needs @functions_framework.cloud_event"
    assert "sync_index" in defined
    assert "cloud_event" not in _decorator_names(defined["sync_index"])


def test_functions_are_second_gen_python_with_own_service_accounts() -> None:
    runtime = default("runtime")
    assert runtime in {"python311", "python312"}
    accounts = []
    for name, body in resources("google_cloudfunctions2_function").items():
        if name == REBUILD:
            continue
        build = block(body, "build_config")
        assert build["runtime"] == "${var.runtime}", name
        source = block(block(build, "source"), "storage_source")
        assert source["bucket"] == "${google_storage_bucket.source.name}"
        assert source["object"] == "${google_storage_bucket_object.source.name}"
        account = service_account(block(body, "service_config")["service_account_email"])
        assert account is not None, f"{name} runs as the default compute account"
        accounts.append(account)
    assert len(accounts) == len(set(accounts)), "functions share a service account"


def test_rebuilds_run_in_a_private_deployment_of_their_own() -> None:
    # GitHub's deliveries must not meet 429 while queued rebuilds hold every instance: the rebuilds run in a
    # second deployment of sync_index, with its own instance bound, and the webhook keeps its capacity.
    sync_name, sync = function_by_entry_point("sync_index")
    rebuild = resource("google_cloudfunctions2_function", REBUILD)
    assert block(rebuild, "build_config") == block(sync, "build_config")
    sync_config, rebuild_config = block(sync, "service_config"), block(rebuild, "service_config")
    assert sync_config["max_instance_count"] == "${var.sync_webhook_max_instances}"
    assert rebuild_config["max_instance_count"] == "${var.sync_max_instances}"
    assert (default("sync_webhook_max_instances"), default("sync_max_instances")) == (3, 2)
    assert rebuild_config["max_instance_request_concurrency"] == sync_config["max_instance_request_concurrency"] == 1
    assert rebuild_config["ingress_settings"] == "ALLOW_INTERNAL_ONLY"
    # The same code with the same account and settings: only who may call it differs, and the webhook
    # secret, which is GitHub's alone: GitHub never reaches the rebuild deployment.
    differing = {"max_instance_count", "ingress_settings", "environment_variables", "secret_environment_variables"}
    assert {k: v for k, v in rebuild_config.items() if k not in differing} == {
        k: v for k, v in sync_config.items() if k not in differing
    }
    assert [secret["key"] for secret in sync_config["secret_environment_variables"]] == ["AUDITOR_WEBHOOK_SECRET"]
    assert "secret_environment_variables" not in rebuild_config
    assert "AUDITOR_WEBHOOK_SECRET" not in json.dumps(rebuild)
    sync_env, rebuild_env = sync_config["environment_variables"], rebuild_config["environment_variables"]
    oidc = {"AUDITOR_OIDC_AUDIENCE", "AUDITOR_OIDC_INVOKERS"}
    assert {k: v for k, v in rebuild_env.items() if k not in oidc} == {
        k: v for k, v in sync_env.items() if k not in oidc
    }
    assert rebuild_env["AUDITOR_OIDC_AUDIENCE"] == f'${{local.function_urls["{REBUILD}"]}}'
    assert rebuild_env["AUDITOR_OIDC_INVOKERS"] == "${google_service_account.sync_queue.email}"
    assert sync_env["AUDITOR_OIDC_INVOKERS"] == "${google_service_account.scheduler.email}"
    invokers = {
        (body["member"], body.get("count"))
        for body in resources("google_cloud_run_service_iam_member").values()
        if body["service"] == f"${{google_cloudfunctions2_function.{REBUILD}.name}}"
    }
    assert invokers == {("serviceAccount:${google_service_account.sync_queue.email}", None)}, "private always"
    assert sync_name != REBUILD


def test_function_environment() -> None:
    _, audit = function_by_entry_point("audit")
    _, sync = function_by_entry_point("sync_index")
    audit_env = block(audit, "service_config")["environment_variables"]
    sync_config = block(sync, "service_config")
    sync_env = sync_config["environment_variables"]

    assert audit_env["AUDITOR_INDEX_URI"] == sync_env["AUDITOR_INDEX_URI"] == "${local.index_uri}"
    assert audit_env["GOOGLE_CLOUD_PROJECT"] == sync_env["GOOGLE_CLOUD_PROJECT"] == "${var.project}"
    index_uri = locals_()["index_uri"]
    assert index_uri == "gs://${google_storage_bucket.index.name}/${var.index_object}"
    assert default("index_object") == "index.json.gz"

    assert sync_env["AUDITOR_MANIFESTS"] == "${local.manifests_url}"
    manifests_url = locals_()["manifests_url"]
    assert "var.manifests_url" in manifests_url
    assert "https://github.com/${var.k8s_io_repository}/archive/{sha}.tar.gz" in manifests_url
    assert default("k8s_io_repository") == "kubernetes/k8s.io"
    assert sync_env["AUDITOR_MANIFESTS_SUBDIR"] == "${var.manifests_subdir}"
    assert default("manifests_subdir") == "registry.k8s.io"
    # Pushes to other branches are ignored and a resync rebuilds this branch's head.
    assert sync_env["AUDITOR_BRANCH"] == "${var.k8s_io_branch}"
    assert default("k8s_io_branch") == "main"
    assert "AUDITOR_WEBHOOK_SECRET" not in sync_env, "the secret must not sit in plain environment"

    secret = block(sync_config, "secret_environment_variables")
    assert secret["key"] == "AUDITOR_WEBHOOK_SECRET"
    assert secret["secret"] == "${google_secret_manager_secret.webhook.secret_id}"
    assert "AUDITOR_WEBHOOK_SECRET" not in str(audit), "audit has no business with the webhook secret"


def _sync_url() -> str:
    """sync_index's URL, built from names at plan time: the scheduler's and the queue's target and audience."""
    sync_name, _ = function_by_entry_point("sync_index")
    urls = locals_()["function_urls"]
    assert urls == (
        '${{for key, name in local.function_names : key => "https://${var.region}-${var.project}'
        '.cloudfunctions.net/${name}"}}'
    )
    assert locals_()["function_names"][sync_name] == "${var.name_prefix}-sync"
    return f'${{local.function_urls["{sync_name}"]}}'


def test_sync_is_reachable_by_github_and_the_scheduler() -> None:
    sync_name, sync = function_by_entry_point("sync_index")
    assert block(sync, "service_config")["ingress_settings"] == "ALLOW_ALL"
    assert default("sync_public") is True
    public = [
        body for body in resources("google_cloud_run_service_iam_member").values() if body["member"] == "allUsers"
    ]
    assert len(public) == 1
    assert public[0]["service"] == f"${{google_cloudfunctions2_function.{sync_name}.name}}"
    assert public[0]["role"] == "roles/run.invoker"
    assert public[0]["count"] == "${var.sync_public ? 1 : 0}"

    job = _resync_job()
    assert job["schedule"] == "${var.resync_schedule}"
    target = block(job, "http_target")
    assert target["http_method"] == "POST"
    assert target["uri"] == _sync_url()
    # The URL is built from names, so the order a reference would give is spelled out.
    assert f"${{google_cloudfunctions2_function.{sync_name}}}" in job["depends_on"]

    # Always a Google-signed token: sync_index checks it whether or not Cloud Run IAM does.
    oidc = block(target, "oidc_token")
    assert oidc["audience"] == _sync_url()
    caller = service_account(oidc["service_account_email"])
    assert caller == "scheduler"
    grants = [
        body
        for body in resources("google_cloud_run_service_iam_member").values()
        if service_account(body["member"]) == caller
        and body["service"] == f"${{google_cloudfunctions2_function.{sync_name}.name}}"
    ]
    assert [(g["service"], g["role"], g.get("count")) for g in grants] == [
        (f"${{google_cloudfunctions2_function.{sync_name}.name}}", "roles/run.invoker", "${var.sync_public ? 0 : 1}")
    ]


# ---------------------------------------------------------------------------------------------------------
# Resync and queued rebuilds: Google-signed OIDC tokens, so the webhook secret is GitHub's alone
# ---------------------------------------------------------------------------------------------------------


def _resync_job() -> Body:
    return resource("google_cloud_scheduler_job", "resync")


def test_resync_job_authenticates_with_an_oidc_token_not_the_webhook_secret() -> None:
    target = block(_resync_job(), "http_target")
    headers = target["headers"]
    assert headers == {"Content-Type": "application/json"}, "no X-Hub-Signature-256, no X-GitHub-Event"
    assert target["body"] == "${base64encode(var.resync_body)}"
    # Nothing of the old design is left: no signing script, no external program, no HMAC in the job.
    assert "external" not in _labelled("data")
    assert not (MODULE / "scripts").exists()
    (terraform,) = _module()["terraform"]
    (providers,) = terraform["required_providers"]
    assert "external" not in providers


def test_sync_index_is_told_its_audience_and_who_may_invoke_it() -> None:
    # Each deployment is told its own URL and the one account whose tokens it takes: the scheduler's resync
    # for sync_index, the queue's rebuild requests for the rebuild deployment.
    _, sync = function_by_entry_point("sync_index")
    rebuild = resource("google_cloudfunctions2_function", REBUILD)
    resync = block(block(_resync_job(), "http_target"), "oidc_token")
    queue_subscription = resource("google_pubsub_subscription", "sync_queue")
    queue = block(block(queue_subscription, "push_config"), "oidc_token")
    for function, token, url in (
        (sync, resync, _sync_url()),
        (rebuild, queue, f'${{local.function_urls["{REBUILD}"]}}'),
    ):
        env = block(function, "service_config")["environment_variables"]
        # The names the code reads (function/settings.py).
        assert env[OIDC_AUDIENCE_VARIABLE] == token["audience"] == url
        assert env[OIDC_INVOKERS_VARIABLE] == token["service_account_email"]
        assert OIDC_CERTS_VARIABLE not in env, "Google's keys, always: only tests serve their own"
    assert block(queue_subscription, "push_config")["push_endpoint"] == queue["audience"]
    assert [service_account(token["service_account_email"]) for token in (resync, queue)] == [
        "scheduler",
        "sync_queue",
    ]
    # Pub/Sub mints the queue's tokens: its agent may do so for that account, and after the agent exists.
    creators = resource("google_service_account_iam_member", "pubsub_push_token_creator")
    assert "${google_service_account.sync_queue.name}" in text(creators["for_each"])
    assert creators["member"] == "${local.pubsub_service_agent}"


def test_resync_body_names_no_commit() -> None:
    # A resync carries no commit time: the body must only ever ask for the branch head.
    body = default("resync_body")
    assert isinstance(body, str)
    document = json.loads(body)
    assert document == {"resync": True}
    validation = block(variables()["resync_body"], "validation")
    assert "jsondecode(var.resync_body)" in validation["condition"]
    assert "!can(jsondecode(var.resync_body).sha)" in validation["condition"]


def test_webhook_secret_never_enters_state() -> None:
    # Write-only and ephemeral: no random_password resource, no secret_data, no data source reading a payload.
    assert "random_password" not in _labelled("resource")
    (password,) = _labelled("ephemeral")["random_password"].values()
    assert password["length"] >= 32
    version = resource("google_secret_manager_secret_version", "webhook")
    assert "secret_data" not in version
    assert version["secret_data_wo"] == (
        "${var.webhook_secret != null ? var.webhook_secret : ephemeral.random_password.webhook.result}"
    )
    assert version["secret_data_wo_version"] == "${var.webhook_secret_version}"
    assert block(version, "lifecycle")["create_before_destroy"] is True
    declared = variables()["webhook_secret"]
    assert declared["ephemeral"] is True
    assert declared["sensitive"] is True
    # A data source would copy the payload into state.
    assert not {"google_secret_manager_secret_version", "google_secret_manager_secret_version_access"} & set(
        _labelled("data")
    )
    (terraform,) = _module()["terraform"]
    assert terraform["required_version"] == ">= 1.11.0", "write-only arguments need Terraform 1.11"
    _, sync = function_by_entry_point("sync_index")
    secret_env = block(block(sync, "service_config"), "secret_environment_variables")
    assert secret_env["secret"] == "${google_secret_manager_secret.webhook.secret_id}"
    assert secret_env["version"] == "latest"


def test_github_token_comes_from_secret_manager_only() -> None:
    _, sync = function_by_entry_point("sync_index")
    config = block(sync, "service_config")
    assert "AUDITOR_GITHUB_TOKEN" not in config["environment_variables"]
    (dynamic,) = [entry["secret_environment_variables"] for entry in config["dynamic"]]
    assert dynamic["for_each"] == "${data.google_secret_manager_secret.github_token}"
    content = block(dynamic, "content")
    assert content["key"] == "AUDITOR_GITHUB_TOKEN"
    assert content["version"] == "latest"
    lookup = _labelled("data")["google_secret_manager_secret"]["github_token"]
    assert lookup["count"] == "${var.github_token_secret == null ? 0 : 1}"
    assert default("github_token_secret") is None
    accessor = resource("google_secret_manager_secret_iam_member", "sync_github_token_accessor")
    assert "data.google_secret_manager_secret.github_token" in accessor["for_each"]
    assert service_account(accessor["member"]) == "sync"
    assert "${google_secret_manager_secret_iam_member.sync_github_token_accessor}" in sync["depends_on"]


def test_source_archive_leaves_out_development_files() -> None:
    archives = _labelled("data")["archive_file"]
    assert len(archives) == 1
    (archive,) = archives.values()
    assert archive["type"] == "zip"
    assert archive["excludes"] == "${var.source_excludes}"
    excludes = default("source_excludes")
    for path in (".venv", ".git", "tests", "terraform", "docs"):
        assert path in excludes
    for path in ("main.py", "function", "requirements.txt"):
        assert path not in excludes
    assert archive["source_dir"] == "${local.source_dir}"
    assert locals_()["source_dir"] == '${coalesce(var.source_dir, "${path.module}/..")}'
    bucket_object = resource("google_storage_bucket_object", "source")
    assert "${data.archive_file.source.output_md5}" in bucket_object["name"], "source changes must redeploy"


# ---------------------------------------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------------------------------------


def test_index_bucket_is_versioned_and_uniform() -> None:
    bucket = resource("google_storage_bucket", "index")
    assert bucket["uniform_bucket_level_access"] is True
    assert block(bucket, "versioning")["enabled"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert "var.force_destroy_buckets" in bucket["force_destroy"]
    assert default("force_destroy_buckets") is False


# ---------------------------------------------------------------------------------------------------------
# Delivery: gcr topic -> push subscription -> audit, with retries and a dead-letter topic
# ---------------------------------------------------------------------------------------------------------


def _audit_subscription() -> tuple[str, Body]:
    pushing = [
        (name, body)
        for name, body in resources("google_pubsub_subscription").items()
        if body.get("push_config") and body["topic"] == "${local.gcr_topic_id}"
    ]
    assert len(pushing) == 1, "expected exactly one push subscription on the gcr topic"
    return pushing[0]


def test_subscription_feeds_the_gcr_topic_to_the_audit_function() -> None:
    audit_name, audit = function_by_entry_point("audit")
    _, subscription = _audit_subscription()

    assert subscription["topic"] == "${local.gcr_topic_id}"
    # Looked up, so that a registry project without the topic fails at plan, not as a 404 at the end.
    assert locals_()["gcr_topic_id"] == "${data.google_pubsub_topic.gcr.id}"
    topic = _labelled("data")["google_pubsub_topic"]["gcr"]
    assert (topic["project"], topic["name"]) == ("${local.registry_project}", "${var.gcr_topic}")
    assert locals_()["registry_project"] == "${coalesce(var.registry_project, var.project)}"
    assert default("gcr_topic") == "gcr"

    push = block(subscription, "push_config")
    audit_uri = f"${{google_cloudfunctions2_function.{audit_name}.service_config[0].uri}}"
    assert push["push_endpoint"].startswith(audit_uri)
    oidc = block(push, "oidc_token")
    assert oidc["audience"] == audit_uri
    pusher = service_account(oidc["service_account_email"])
    assert pusher is not None
    invokers = {
        (g["service"], g["role"])
        for g in resources("google_cloud_run_service_iam_member").values()
        if service_account(g["member"]) == pusher
    }
    # The sync queue has its own push identity: this one reaches audit alone.
    assert invokers == {(f"${{google_cloudfunctions2_function.{audit_name}.name}}", "roles/run.invoker")}
    # A second delivery path would audit every event twice, and the Eventarc one without dead letters.
    assert "event_trigger" not in audit
    assert resources("google_eventarc_trigger") == {}


def test_dead_letter_policy_and_retries() -> None:
    sub_name, subscription = _audit_subscription()

    dead_letter = block(subscription, "dead_letter_policy")
    assert dead_letter["dead_letter_topic"] == '${google_pubsub_topic.dead_letter["audit"].id}'
    topic = resource("google_pubsub_topic", "dead_letter")
    assert topic["for_each"] == "${toset(local.dead_letter_queues)}"
    assert "audit" in locals_()["dead_letter_queues"]
    assert dead_letter["max_delivery_attempts"] == "${var.audit_max_delivery_attempts}"
    assert 5 <= default("audit_max_delivery_attempts") <= 100

    retry = block(subscription, "retry_policy")
    assert retry["minimum_backoff"] == "${var.audit_min_backoff}"
    assert retry["maximum_backoff"] == "${var.audit_max_backoff}"
    assert block(subscription, "expiration_policy")["ttl"] == ""

    # Something must keep dead letters, or Pub/Sub drops them on a topic without subscriptions.
    holds = {
        name: body
        for name, body in resources("google_pubsub_subscription").items()
        if body.get("for_each") == "${google_pubsub_topic.dead_letter}"
    }
    assert list(holds) == ["dead_letter_hold"]
    hold = holds["dead_letter_hold"]
    assert hold["topic"] == "${each.value.id}"
    assert "push_config" not in hold, "dead letters must wait for an operator, not be pushed anywhere"
    assert block(hold, "expiration_policy")["ttl"] == ""
    assert "${google_pubsub_subscription.dead_letter_hold}" in subscription["depends_on"]

    # Dead lettering is done by the Pub/Sub service agent, which needs both grants, made after the wait for
    # the agent to exist in IAM (provider issue #21931).
    assert locals_()["pubsub_service_agent"] == 'serviceAccount:${time_sleep.pubsub_agent.triggers["email"]}'
    wait = resource("time_sleep", "pubsub_agent")
    assert wait["triggers"] == {"email": "${google_project_service_identity.pubsub.email}"}
    assert wait["create_duration"] == "60s"
    publisher = resource("google_pubsub_topic_iam_member", "dead_letter_publisher")
    assert publisher["for_each"] == "${google_pubsub_topic.dead_letter}"
    assert (publisher["role"], publisher["member"]) == ("roles/pubsub.publisher", "${local.pubsub_service_agent}")
    subscriber = resource("google_pubsub_subscription_iam_member", "dead_letter_subscriber")
    assert subscriber["for_each"] == "${local.dead_lettering_subscriptions}"
    assert (subscriber["role"], subscriber["member"]) == ("roles/pubsub.subscriber", "${local.pubsub_service_agent}")
    dead_lettering = {
        name for name, body in resources("google_pubsub_subscription").items() if body.get("dead_letter_policy")
    }
    assert (
        {
            value.removeprefix("${google_pubsub_subscription.").removesuffix(".name}")
            for value in locals_()["dead_lettering_subscriptions"].values()
        }
        == dead_lettering
        == {sub_name, "audit_replay", "sync_queue"}
    )


# ---------------------------------------------------------------------------------------------------------
# Least privilege
# ---------------------------------------------------------------------------------------------------------


def test_no_service_account_holds_a_project_wide_admin_role() -> None:
    # Authoritative bindings would also strip everyone else's roles from the registry project.
    assert resources("google_project_iam_binding") == {}
    assert resources("google_project_iam_policy") == {}
    granted = list(resources("google_project_iam_member").items())
    assert granted
    for name, body in granted:
        roles = roles_of(body)
        assert roles, f"google_project_iam_member.{name} grants no literal role"
        for role in roles:
            assert role not in {"roles/owner", "roles/editor"}, name
            assert not role.lower().endswith("admin"), f"{name} grants {role} project-wide"
            assert not role.startswith("roles/iam."), f"{name} grants {role} project-wide"
            assert not role.startswith("roles/resourcemanager."), f"{name} grants {role} project-wide"


def _grants(account: str) -> dict[str, set[str]]:
    """{resource type: roles} granted to google_service_account.<account> anywhere in the module."""
    found: dict[str, set[str]] = {}
    for rtype, named in _labelled("resource").items():
        if not rtype.endswith("_iam_member"):
            continue
        for body in named.values():
            if service_account(body["member"]) == account:
                found.setdefault(rtype, set()).update(roles_of(body))
    return found


def _bucket_of_grant(account: str) -> str:
    """The bucket of the account's one bucket-level grant."""
    (grant,) = (
        body
        for body in resources("google_storage_bucket_iam_member").values()
        if service_account(body["member"]) == account
    )
    return str(grant["bucket"])


def test_audit_account_reads_the_index_and_the_registries_only() -> None:
    _, audit = function_by_entry_point("audit")
    account = service_account(block(audit, "service_config")["service_account_email"])
    assert account is not None
    assert _grants(account) == {
        "google_storage_bucket_iam_member": {"roles/storage.objectViewer"},
        "google_project_iam_member": {"roles/artifactregistry.reader", "roles/logging.logWriter"},
    }
    assert _bucket_of_grant(account) == "${google_storage_bucket.index.name}"
    (registry_grant,) = (
        body
        for body in resources("google_project_iam_member").values()
        if service_account(body["member"]) == account and "artifactregistry" in body["role"]
    )
    assert registry_grant["project"] == "${local.registry_project}"


def test_sync_account_writes_the_index_and_reads_its_secret() -> None:
    _, sync = function_by_entry_point("sync_index")
    account = service_account(block(sync, "service_config")["service_account_email"])
    assert account is not None
    grants = _grants(account)
    assert grants == {
        "google_storage_bucket_iam_member": {"roles/storage.objectUser"},
        "google_secret_manager_secret_iam_member": {"roles/secretmanager.secretAccessor"},
        "google_project_iam_member": {"roles/artifactregistry.reader", "roles/logging.logWriter"},
        "google_pubsub_topic_iam_member": {"roles/pubsub.publisher"},
    }
    assert _bucket_of_grant(account) == "${google_storage_bucket.index.name}"
    secret_grant = resource("google_secret_manager_secret_iam_member", "sync_webhook_accessor")
    assert secret_grant["secret_id"] == "${google_secret_manager_secret.webhook.id}"
    # The only other secret it may read is the optional GitHub token.
    assert set(resources("google_secret_manager_secret_iam_member")) == {
        "sync_webhook_accessor",
        "sync_github_token_accessor",
    }


# ---------------------------------------------------------------------------------------------------------
# Alerting
# ---------------------------------------------------------------------------------------------------------


# Every alert policy: what it watches, and that what it watches is really written or really measured.
# Alarms are one policy per log-based metric of the same key, and any counted line pages; liveness
# conditions are tuned by variables.
ALARMS = {"audit_alarms", "freshness_errors", "sweep_rejections", "missing"}
LIVENESS_LOGS = {"index_not_refreshed": "index_refreshed", "sweep_liveness": "sweep_summaries"}
PUBSUB_ALERTS = {
    "backlog": "pubsub.googleapis.com/subscription/oldest_unacked_message_age",
    "push_failures": "pubsub.googleapis.com/subscription/push_request_count",
    "dead_letters": "pubsub.googleapis.com/subscription/num_undelivered_messages",
}
RUNBOOK = ROOT / "docs" / "runbook.md"
_LOG_METRIC_TYPE = 'metric.type="logging.googleapis.com/user/${google_logging_metric.lines[%s].name}"'
_METRIC_KEY = re.compile(r'google_logging_metric\.lines\["([a-z_]+)"\]\.name')
_LABEL_TEST = re.compile(r'metric\.labels?\.([a-z_]+)="([^"]*)"')
_FUNCTION_NAME = re.compile(r'\$\{local\.function_names\["([a-z_]+)"\]\}')


def log_metrics() -> dict[str, Body]:
    """The log-based metrics by key: `description`, `filter` and `labels` ({label: {extractor, description}})."""
    metrics: dict[str, Body] = locals_()["log_metrics"]
    return metrics


def extractors(metric: str) -> dict[str, str]:
    return {label: body["extractor"] for label, body in log_metrics()[metric]["labels"].items()}


def log_alarms() -> dict[str, Body]:
    alarms: dict[str, Body] = locals_()["log_alarms"]
    return alarms


def _policies() -> dict[str, tuple[Body, str]]:
    """Every alert policy, the alarms of the for_each one by key, with its documentation's text."""
    found: dict[str, tuple[Body, str]] = {}
    for name, policy in resources("google_monitoring_alert_policy").items():
        content = text(block(policy, "documentation")["content"])
        if name == "log_alarms":
            assert content == "${each.value.documentation}"
            found.update({key: (policy, text(alarm["documentation"])) for key, alarm in log_alarms().items()})
            continue
        # A per-key policy takes its text from locals named in a conditional.
        for local in re.findall(r"local\.([a-z_]+_doc)\b", content):
            content += "\n" + text(locals_()[local])
        found[name] = (policy, content)
    return found


def _conditions(policy: Body) -> list[tuple[str, Body]]:
    found = []
    for condition in policy["conditions"]:
        for kind in ("condition_threshold", "condition_absent"):
            if kind in condition:
                found.append((kind, block(condition, kind)))
    assert len(found) == len(policy["conditions"]), "a condition of an unknown kind"
    return found


def _service_name(function: str) -> str:
    return f"svc-{function}"


def _resolved(log_filter: str) -> str:
    """A metric filter with each function's name in place of its Terraform reference."""
    return _FUNCTION_NAME.sub(lambda match: _service_name(match.group(1)), log_filter)


def test_every_alert_policy_is_known_notifies_and_names_its_runbook_section() -> None:
    policies = _policies()
    assert set(policies) == ALARMS | set(LIVENESS_LOGS) | set(PUBSUB_ALERTS), "a new policy needs its wiring test"
    headings = {line.lstrip("#").strip() for line in RUNBOOK.read_text().splitlines() if line.startswith("#")}
    for name, (policy, documentation) in policies.items():
        assert policy["notification_channels"] == "${var.alert_channels}", name
        assert block(policy, "alert_strategy")["auto_close"] == "${var.alert_auto_close}", name
        sections = re.findall(r'\$\{local\.runbook\}, sections? ("[^"]+"(?: and "[^"]+")*)', documentation)
        assert sections, f"{name}'s documentation names no runbook section"
        for section in re.findall(r'"([^"]+)"', " ".join(sections)):
            assert any(heading.startswith(section) for heading in headings), f"runbook has no section {section!r}"


def test_alerts_link_to_the_runbook_deployed_with_the_code_by_default() -> None:
    assert default("runbook_url") is None
    declared = locals_()
    served = "https://storage.cloud.google.com/${local.index_bucket_name}/runbook/runbook.md"
    assert declared["runbook"] == f'${{coalesce(var.runbook_url, "{served}")}}'
    assert declared["runbook_objects"] == '${var.runbook_url == null ? toset(["runbook.md", "oncall.md"]) : toset([])}'
    uploaded = resource("google_storage_bucket_object", "runbook")
    # In the bucket on-call reads for `lookup` and `stats`, as text a browser shows.
    assert uploaded == {
        "for_each": "${local.runbook_objects}",
        "bucket": "${google_storage_bucket.index.name}",
        "name": "runbook/${each.key}",
        "source": "${local.source_dir}/docs/${each.key}",
        "content_type": "text/plain; charset=utf-8",
    }
    assert all((ROOT / "docs" / name).is_file() for name in ("runbook.md", "oncall.md"))


def test_alert_channels_cannot_silently_default_to_nowhere() -> None:
    declared = variables()["alert_channels"]
    assert declared.get("default") is None
    conditions = [v["condition"] for v in declared["validation"]]
    assert "${var.alert_channels != null}" in conditions
    assert any("notificationChannels" in condition for condition in conditions)


def test_each_log_metric_counts_lines_with_the_labels_it_extracts() -> None:
    metric = resource("google_logging_metric", "lines")
    assert metric["for_each"] == "${local.log_metrics}"
    assert metric["filter"] == "${each.value.filter}"
    assert metric["label_extractors"] == "${{for key, label in each.value.labels : key => label.extractor}}"
    (dynamic,) = block(metric, "metric_descriptor")["dynamic"]
    assert dynamic["labels"]["for_each"] == "${each.value.labels}"
    assert block(dynamic["labels"], "content")["key"] == "${labels.key}"
    for key, body in log_metrics().items():
        assert body["description"], key
        assert body["labels"], f"{key} extracts no label"
        for label, declared in body["labels"].items():
            assert declared["description"], f"{key}.{label}"
            assert declared["extractor"].startswith(("EXTRACT(", "REGEXP_EXTRACT(")), f"{key}.{label}"
    # Provider issue #11102: a policy created right after its metric fails with "Cannot find metric(s)".
    assert "google_logging_metric.lines" in text(resource("time_sleep", "log_metrics")["triggers"])


def test_alarms_page_on_any_line_their_metric_counts() -> None:
    policy = resource("google_monitoring_alert_policy", "log_alarms")
    assert policy["for_each"] == "${local.log_alarms}"
    assert "${time_sleep.log_metrics}" in policy["depends_on"]
    ((kind, condition),) = _conditions(policy)
    assert kind == "condition_threshold"
    assert text(condition["filter"]) == 'resource.type="cloud_run_revision" AND ' + _LOG_METRIC_TYPE % "each.key"
    assert (condition["comparison"], condition["threshold_value"], condition["duration"]) == ("COMPARISON_GT", 0, "0s")
    assert block(condition, "aggregations")["group_by_fields"] == "${each.value.group_by}"
    assert set(log_alarms()) == ALARMS
    for alarm, body in log_alarms().items():
        assert alarm in log_metrics(), f"alarm {alarm} has no log-based metric of its key"
        grouped = {field.removeprefix("metric.label.") for field in body["group_by"]}
        assert grouped <= set(log_metrics()[alarm]["labels"]), f"{alarm} groups by labels its metric lacks"


@pytest.mark.parametrize("policy_name", sorted(LIVENESS_LOGS))
def test_liveness_on_a_log_metric_waits_for_it_and_is_tuned_by_variables(policy_name: str) -> None:
    policy = resource("google_monitoring_alert_policy", policy_name)
    metric = LIVENESS_LOGS[policy_name]
    for kind, condition in _conditions(policy):
        condition_filter = text(condition["filter"])
        assert condition_filter.startswith('resource.type="cloud_run_revision" AND ')
        assert _METRIC_KEY.findall(condition_filter) == [metric], condition_filter
        # Labels a condition selects on must be labels the metric extracts.
        for label, _ in _LABEL_TEST.findall(condition_filter):
            assert label in log_metrics()[metric]["labels"], f"{policy_name} filters on unknown label {label}"
        if kind == "condition_absent":
            assert re.fullmatch(r"\$\{var\.[a-z_]+\}s", condition["duration"]), condition["duration"]
        else:
            assert condition["threshold_value"] == 0, "a line that is itself the failure pages at once"
    assert "${time_sleep.log_metrics}" in policy["depends_on"]


def test_absence_conditions_watch_only_periodic_signals() -> None:
    absent = {
        name: [condition for kind, condition in _conditions(policy) if kind == "condition_absent"]
        for name, policy in resources("google_monitoring_alert_policy").items()
    }
    # The resync is hourly and the sweep daily by construction; registry traffic is bursty.
    assert {name for name, conditions in absent.items() if conditions} == {"index_not_refreshed", "sweep_liveness"}
    assert absent["index_not_refreshed"][0]["duration"] == "${var.index_refresh_absent_seconds}s"
    assert absent["sweep_liveness"][0]["duration"] == "${var.sweep_absent_seconds}s"
    assert default("index_refresh_absent_seconds") >= 3 * 3600, "a few hourly resync periods"
    assert default("sweep_absent_seconds") >= 86400 - 3600, "the sweep runs daily"


@pytest.mark.parametrize("policy_name", sorted(PUBSUB_ALERTS))
def test_pubsub_alert_watches_its_subscription_with_variable_thresholds(policy_name: str) -> None:
    policy = resource("google_monitoring_alert_policy", policy_name)
    ((kind, condition),) = _conditions(policy)
    assert kind == "condition_threshold"
    condition_filter = text(condition["filter"])
    assert condition_filter.startswith('resource.type="pubsub_subscription" AND resource.labels.subscription_id=')
    assert f'metric.type="{PUBSUB_ALERTS[policy_name]}"' in condition_filter
    watched = set(re.findall(r"\$\{(google_pubsub_subscription\.[a-z_]+)(?:\.name)?\}", condition_filter))
    if policy_name == "dead_letters":
        assert policy["for_each"] == "${google_pubsub_subscription.dead_letter_hold}"
        assert 'resource.labels.subscription_id="${each.value.name}"' in condition_filter
        return
    for subscription in watched:
        resource("google_pubsub_subscription", subscription.split(".")[1])
    assert "google_pubsub_subscription.audit" in watched
    assert re.fullmatch(r"\$\{var\.[a-z_]+\}", str(condition["threshold_value"])), "threshold must be a variable"
    assert re.fullmatch(r"\$\{var\.[a-z_]+\}s", condition["duration"]), "duration must be a variable"
    if policy_name == "push_failures":
        assert "google_pubsub_subscription.sync_queue" in watched
        assert 'metric.labels.response_class!="ack"' in condition_filter
        assert "metric.label.response_class" in block(condition, "aggregations")["group_by_fields"]


# ---------------------------------------------------------------------------------------------------------
# Log-based metrics against the lines the code writes
# ---------------------------------------------------------------------------------------------------------

_LINE_KINDS = {
    "verified event": lambda: log_lines.event_line("verified"),
    "rejected event": lambda: log_lines.event_line("rejected"),
    "malformed event": lambda: log_lines.event_line("malformed"),
    "sweep rejected": log_lines.sweep_rejected_line,
    "sweep missing": log_lines.sweep_missing_line,
    "sync published": lambda: log_lines.sync_line("published"),
    "sync unchanged": lambda: log_lines.sync_line("unchanged"),
    "sync refused": lambda: log_lines.sync_line("refused"),
    "sync failed": lambda: log_lines.sync_line("failed"),
    "sync queued": lambda: log_lines.sync_line("queued"),
    "stale sync": log_lines.stale_sync_line,
    "index unreadable": log_lines.index_unreadable_line,
    "sweep complete": lambda: log_lines.sweep_summary_line(complete=True),
    "sweep incomplete": lambda: log_lines.sweep_summary_line(complete=False, missing=1),
}
# (metric, function that writes the line, line kind, counted?)
_COUNTED = [
    ("audit_alarms", "audit", "rejected event", True),
    ("audit_alarms", "audit", "malformed event", True),
    ("audit_alarms", "audit", "verified event", False),
    ("audit_alarms", "sweep", "sweep rejected", False),
    ("index_refreshed", "sync", "sync published", True),
    ("index_refreshed", "sync", "sync unchanged", True),
    # Queued rebuilds log their outcome from the rebuild deployment.
    ("index_refreshed", "rebuild", "sync published", True),
    ("index_refreshed", "rebuild", "sync unchanged", True),
    ("index_refreshed", "rebuild", "sync failed", False),
    ("index_refreshed", "sync", "sync refused", False),
    ("index_refreshed", "sync", "sync failed", False),
    ("index_refreshed", "sync", "sync queued", False),
    ("index_refreshed", "audit", "sync published", False),
    ("freshness_errors", "audit", "stale sync", True),
    ("freshness_errors", "sync", "stale sync", True),
    ("freshness_errors", "audit", "index unreadable", True),
    ("freshness_errors", "rebuild", "index unreadable", True),
    ("freshness_errors", "audit", "rejected event", False),
    ("sweep_summaries", "sweep", "sweep complete", True),
    ("sweep_summaries", "sweep", "sweep incomplete", True),
    ("sweep_summaries", "sweep", "sweep missing", False),
    ("sweep_rejections", "sweep", "sweep rejected", True),
    ("sweep_rejections", "sweep", "sweep missing", False),
    ("sweep_rejections", "audit", "rejected event", False),
    ("missing", "sweep", "sweep missing", True),
    ("missing", "sweep", "sweep rejected", False),
    ("missing", "sweep", "sweep incomplete", False),
    ("verdicts", "audit", "verified event", True),
    ("verdicts", "sweep", "sweep missing", True),
    ("verdicts", "sync", "sync published", False),
    ("verdicts", "sweep", "sweep complete", False),
]


def _entry(service: str, kind: str) -> dict[str, Any]:
    return logfilter.log_entry(_LINE_KINDS[kind](), _service_name(service))


@pytest.mark.parametrize(("metric", "service", "kind", "counted"), _COUNTED, ids=lambda value: str(value))
def test_log_metric_filter_matches_the_lines_the_code_writes(
    metric: str, service: str, kind: str, counted: bool
) -> None:
    log_filter = _resolved(text(log_metrics()[metric]["filter"]))
    assert logfilter.matches(log_filter, _entry(service, kind)) is counted


def test_every_log_metric_is_covered_by_line_tests() -> None:
    assert {metric for metric, _, _, counted in _COUNTED if counted} == set(log_metrics())


@pytest.mark.parametrize(
    ("metric", "service", "kind", "labels"),
    [
        ("audit_alarms", "audit", "rejected event", {"verdict": "REJECTED", "reason": "unknown_digest"}),
        # Free text is no label value.
        ("audit_alarms", "audit", "malformed event", {"verdict": "MALFORMED", "reason": None}),
        ("verdicts", "sweep", "sweep missing", {"verdict": "MISSING", "source": "sweep", "host": log_lines.REGION}),
        ("verdicts", "audit", "verified event", {"verdict": "VERIFIED", "source": "event", "host": log_lines.REGION}),
        ("index_refreshed", "sync", "sync unchanged", {"outcome": "unchanged"}),
        ("freshness_errors", "audit", "stale sync", {"freshness": "stale_sync"}),
        ("sweep_summaries", "sweep", "sweep incomplete", {"complete": "false"}),
        ("sweep_summaries", "sweep", "sweep complete", {"complete": "true"}),
        ("sweep_rejections", "sweep", "sweep rejected", {"reason": "unknown_digest", "host": log_lines.REGION}),
        ("missing", "sweep", "sweep missing", {"reason": "absent", "host": log_lines.REGION}),
    ],
)
def test_log_metric_labels_come_from_the_lines(
    metric: str, service: str, kind: str, labels: dict[str, str | None]
) -> None:
    entry = _entry(service, kind)
    assert {key: logfilter.extract(extractors(metric)[key], entry) for key in labels} == labels


def test_incomplete_sweep_condition_selects_the_label_an_incomplete_summary_gets() -> None:
    policy = resource("google_monitoring_alert_policy", "sweep_liveness")
    selected = [
        dict(_LABEL_TEST.findall(text(condition["filter"])))
        for kind, condition in _conditions(policy)
        if kind == "condition_threshold"
    ]
    entry = _entry("sweep", "sweep incomplete")
    assert selected == [{"complete": logfilter.extract(extractors("sweep_summaries")["complete"], entry)}]


def test_dashboard_charts_draw_existing_metrics_and_labels() -> None:
    charts = locals_()["dashboard_charts"]
    titles = " | ".join(chart["title"] for chart in charts)
    for topic in (
        "Verdicts per reason",
        "RETRY",
        "Oldest unacknowledged",
        "Index refreshes",
        "Sweep findings per region",
    ):
        assert topic in titles
    for chart in charts:
        chart_filter = chart["filter"]
        used = _METRIC_KEY.findall(chart_filter)
        for metric in used:
            wanted = {label for label, _ in _LABEL_TEST.findall(chart_filter)}
            wanted |= {field.removeprefix("metric.label.") for field in chart["group"]}
            missing = wanted - set(log_metrics()[metric]["labels"])
            assert not missing, f"{chart['title']}: {missing} not extracted by {metric}"
        assert used or "pubsub.googleapis.com" in chart_filter, chart["title"]


# ---------------------------------------------------------------------------------------------------------
# First apply on an empty project
# ---------------------------------------------------------------------------------------------------------


def test_providers_are_recent_enough_and_pinned() -> None:
    (terraform,) = _module()["terraform"]
    (providers,) = terraform["required_providers"]
    # `~>` on every provider: a new major release arrives only by editing this module.
    for name, provider in providers.items():
        assert provider["version"].startswith("~> "), f"{name} is not pinned with ~>: {provider['version']}"
    assert providers["archive"]["version"] == "~> 2.5", "glob excludes arrived in archive 2.5.0"
    assert providers["random"]["version"] == "~> 3.7", "the ephemeral random_password arrived in random 3.7"
    # secret_data_wo arrived in google 6.23; the module is written against 7.x.
    assert providers["google"]["version"] == providers["google-beta"]["version"] == "~> 7.0"
    assert "time" in providers
    assert resource("google_project_service_identity", "pubsub")["provider"] == "google-beta"


def test_every_resource_carries_the_default_labels() -> None:
    labels = locals_()["labels"]
    assert labels.startswith("${merge({") and labels.endswith(", var.labels)}"), "operators' labels win"
    for key in ("app", "instance", "managed-by"):
        assert key in labels
    for provider in _module()["provider"]:
        for name, body in provider.items():
            assert body["default_labels"] == "${local.labels}", name
    # default_labels does not reach alert policies: their user_labels do.
    for name, policy in resources("google_monitoring_alert_policy").items():
        assert policy["user_labels"] == "${local.labels}", name


def test_source_zip_does_not_depend_on_the_umask() -> None:
    (archive,) = _labelled("data")["archive_file"].values()
    assert archive["output_file_mode"] == "0666"
    assert ".tools" in default("source_excludes"), "the checkov venv must not be uploaded"


def test_required_apis_are_enabled_first() -> None:
    apis = set(locals_()["apis"])
    for api in ("cloudresourcemanager", "serviceusage", "cloudscheduler", "cloudbuild", "iam", "pubsub", "run"):
        assert f"{api}.googleapis.com" in apis
    for name, account in resources("google_service_account").items():
        assert "${google_project_service.this}" in account.get("depends_on", []), name
    token_creator = resource("google_service_account_iam_member", "pubsub_push_token_creator")
    assert "${google_project_service.this}" in token_creator["depends_on"]
    assert token_creator["member"] == "${local.pubsub_service_agent}"
    assert "${google_project_service.this}" in resource("google_project_service_identity", "pubsub")["depends_on"]


def test_push_subscriptions_wait_for_the_token_creator_grant() -> None:
    pushing = {name: body for name, body in resources("google_pubsub_subscription").items() if body.get("push_config")}
    assert set(pushing) == {"audit", "audit_replay", "sync_queue"}
    for name, body in pushing.items():
        assert "${google_service_account_iam_member.pubsub_push_token_creator}" in body["depends_on"], name


def test_function_builds_wait_for_the_build_account_grants() -> None:
    sleep = resource("time_sleep", "build_grants")
    waited = set(sleep["depends_on"])
    assert waited == {
        "${google_project_iam_member.build_log_writer}",
        "${google_project_iam_member.build_sources_reader}",
        "${google_artifact_registry_repository_iam_member.build_writer}",
    }
    # The build reads the copy Cloud Functions makes in its gcf-v2-sources-* buckets, never the source
    # bucket: read-only, and only there.
    assert _grants("build") == {
        "google_project_iam_member": {"roles/logging.logWriter", "roles/storage.objectViewer"},
        "google_artifact_registry_repository_iam_member": {"roles/artifactregistry.writer"},
    }
    reader = resource("google_project_iam_member", "build_sources_reader")
    assert reader["role"] == "roles/storage.objectViewer"
    expression = block(reader, "condition")["expression"].replace('\\"', '"')
    assert expression == 'resource.name.startsWith("projects/_/buckets/gcf-v2-sources-")'
    assert "condition" not in resource("google_project_iam_member", "build_log_writer")
    for name, function in resources("google_cloudfunctions2_function").items():
        assert "${time_sleep.build_grants}" in function["depends_on"], name
        assert block(function, "build_config")["service_account"] == "${google_service_account.build.id}"


def test_moved_blocks_land_on_resources() -> None:
    declared = {(rtype, name) for rtype, named in _labelled("resource").items() for name in named}
    for moved in _module().get("moved", []):
        target = re.fullmatch(r'\$\{([a-z0-9_]+)\.([a-z0-9_]+)(?:\["[a-z_]+"\])?\}', moved["to"])
        assert target, moved
        assert (target.group(1), target.group(2)) in declared


def test_checkov_skips_carry_their_reason() -> None:
    skips = [
        line.strip() for path in MODULE.glob("*.tf") for line in path.read_text().splitlines() if "checkov:" in line
    ]
    assert skips
    for skip in skips:
        assert re.fullmatch(r"#checkov:skip=CKV2?_[A-Z0-9_]+:\S.{20,}", skip), f"skip without a reason: {skip}"
    assert any(skip.startswith("#checkov:skip=CKV_GCP_102:") and "HMAC" in skip for skip in skips)


# ---------------------------------------------------------------------------------------------------------
# What the code of the other issues needs: environment, sweep, sync queue, replay
# ---------------------------------------------------------------------------------------------------------


def test_audit_environment_for_freshness_frozen_registries_and_deadline() -> None:
    _, audit = function_by_entry_point("audit")
    env = block(audit, "service_config")["environment_variables"]
    assert env["AUDITOR_REFRESH_SECONDS"] == "${tostring(var.audit_refresh_seconds)}"
    assert env["AUDITOR_PENDING_GRACE_SECONDS"] == "${tostring(var.pending_grace_seconds)}"
    assert env["AUDITOR_FROZEN_PREFIXES"] == '${join(",", var.frozen_prefixes)}'
    assert env["AUDITOR_DEADLINE_SECONDS"] == "${tostring(var.audit_deadline_seconds)}"
    assert (default("audit_refresh_seconds"), default("pending_grace_seconds")) == (60, 1800)
    assert default("audit_deadline_seconds") < default("audit_timeout_seconds")
    precondition = block(block(audit, "lifecycle"), "precondition")
    assert precondition["condition"] == "${var.audit_deadline_seconds < var.audit_timeout_seconds}"
    assert default("frozen_prefixes") == [
        f"{host}/k8s-artifacts-prod" for host in ("gcr.io", "asia.gcr.io", "eu.gcr.io", "us.gcr.io")
    ]


def test_sync_queue_delivers_rebuild_requests_back_to_sync_index() -> None:
    sync_name, sync = function_by_entry_point("sync_index")
    env = block(sync, "service_config")["environment_variables"]
    assert env["AUDITOR_SYNC_QUEUE"] == "${google_pubsub_topic.sync_queue.id}"
    assert "var.head_url" in env["AUDITOR_HEAD_URL"]
    assert "{branch}" in env["AUDITOR_HEAD_URL"]
    queue = resource("google_pubsub_subscription", "sync_queue")
    assert queue["topic"] == "${google_pubsub_topic.sync_queue.id}"
    assert queue["ack_deadline_seconds"] == 600
    push = block(queue, "push_config")
    rebuild_url = f'${{local.function_urls["{REBUILD}"]}}'
    assert push["push_endpoint"] == rebuild_url
    assert block(push, "oidc_token")["audience"] == rebuild_url
    assert service_account(block(push, "oidc_token")["service_account_email"]) == "sync_queue"
    assert f"${{google_cloudfunctions2_function.{REBUILD}}}" in queue["depends_on"]
    assert sync_name != REBUILD
    assert block(queue, "retry_policy")["minimum_backoff"] == "${var.sync_queue_min_backoff}"
    assert block(queue, "dead_letter_policy")["dead_letter_topic"] == '${google_pubsub_topic.dead_letter["sync"].id}'
    publisher = resource("google_pubsub_topic_iam_member", "sync_queue_publisher")
    assert (publisher["topic"], publisher["role"]) == (
        "${google_pubsub_topic.sync_queue.name}",
        "roles/pubsub.publisher",
    )
    assert service_account(publisher["member"]) == service_account(
        block(sync, "service_config")["service_account_email"]
    )


def test_sweep_runs_daily_read_only_and_private() -> None:
    sweep_name, sweep = function_by_entry_point("sweep")
    config = block(sweep, "service_config")
    assert config["environment_variables"] == {
        "AUDITOR_INDEX_URI": "${local.index_uri}",
        "GOOGLE_CLOUD_PROJECT": "${var.project}",
        "AUDITOR_FROZEN_PREFIXES": '${join(",", var.frozen_prefixes)}',
        # The sweep's budget ends before the function's timeout, so its summary is always written.
        "AUDITOR_SWEEP_MAX_SECONDS": "${tostring(max(30, var.sweep_timeout_seconds - 120))}",
        "AUDITOR_SIGNERS": '${join(",", var.signers)}',
        "AUDITOR_TRUSTED_ROOT": "${var.trusted_root}",
        "AUDITOR_SIGNING_REGISTRY": "${var.signing_registry}",
        "AUDITOR_SIGNED_SINCE": "${var.signed_since}",
    }
    assert config["timeout_seconds"] == "${var.sweep_timeout_seconds}"
    assert default("sweep_timeout_seconds") <= 3600
    assert config["ingress_settings"] == "ALLOW_INTERNAL_ONLY"
    account = service_account(config["service_account_email"])
    assert account == "sweep"
    assert _grants(account) == {
        "google_storage_bucket_iam_member": {"roles/storage.objectViewer"},
        "google_project_iam_member": {"roles/artifactregistry.reader", "roles/logging.logWriter"},
    }
    assert _bucket_of_grant(account) == "${google_storage_bucket.index.name}"
    registry = resource("google_project_iam_member", "sweep_registry_reader")
    assert registry["for_each"] == "${toset(var.grant_registry_reader ? local.sweep_registry_projects : [])}"
    assert "var.sweep_registry_projects" in locals_()["sweep_registry_projects"]

    job = resource("google_cloud_scheduler_job", "sweep")
    assert job["schedule"] == "${var.sweep_schedule}"
    target = block(job, "http_target")
    uri = f"${{google_cloudfunctions2_function.{sweep_name}.service_config[0].uri}}"
    assert target["uri"] == uri
    oidc = block(target, "oidc_token")
    assert oidc["audience"] == uri
    caller = service_account(oidc["service_account_email"])
    invokers = {
        (service_account(body["member"]), body["role"])
        for body in resources("google_cloud_run_service_iam_member").values()
        if body["service"] == f"${{google_cloudfunctions2_function.{sweep_name}.name}}"
    }
    assert invokers == {(caller, "roles/run.invoker")}, "only the scheduler may start a sweep"


def test_dead_letters_replay_through_a_topic_that_feeds_only_the_auditor() -> None:
    audit_name, _ = function_by_entry_point("audit")
    fed = [
        body
        for body in resources("google_pubsub_subscription").values()
        if body["topic"] == "${google_pubsub_topic.audit_replay.id}"
    ]
    assert len(fed) == 1
    assert block(fed[0], "push_config")["push_endpoint"].startswith(
        f"${{google_cloudfunctions2_function.{audit_name}.service_config[0].uri}}/"
    )
    command = text(locals_()["replay_command"])
    assert 'google_pubsub_subscription.dead_letter_hold["audit"].name' in command
    assert "gcloud pubsub topics publish ${google_pubsub_topic.audit_replay.name}" in command
    assert "gcr" not in command.replace("gcr_topic", "")
    # Scratch files go outside the repository, whose root is zipped into the function source.
    assert "mktemp -d" in command
    assert all(f'"$scratch/{name}"' in command for name in ("dead-letters.json", "payloads.jsonl"))


def test_outputs_give_on_call_what_it_needs_without_state_access() -> None:
    outputs = {name for entry in _module()["output"] for name in entry}
    assert {
        "project",
        "region",
        "index_uri",
        "dead_letter_replay_command",
        "dashboard_url",
        "sweep_job",
        "runbook_url",
    } <= outputs


@pytest.mark.parametrize(
    "query",
    ['a="x" OR b="y"', "severity>=ERROR", 'jsonPayload.x=~"re"', 'a=("x" AND "y")', "a="],
    ids=["or-between-comparisons", "ordering", "regex", "and-in-value-list", "no-value"],
)
def test_filter_matcher_refuses_syntax_it_does_not_know(query: str) -> None:
    # A filter the matcher misreads must fail its test, never pass it.
    with pytest.raises(logfilter.UnsupportedFilter):
        logfilter.matches(query, {"a": "x"})


def test_replay_subscription_delivers_exactly_like_the_audit_subscription() -> None:
    # A replayed event must meet the same retries, dead letters and identity as the original delivery.
    _, audit = _audit_subscription()
    replay = resource("google_pubsub_subscription", "audit_replay")
    differing = {"name", "topic", "push_config", "lifecycle"}
    assert {key: value for key, value in replay.items() if key not in differing} == {
        key: value for key, value in audit.items() if key not in differing
    }
    replay_push, audit_push = block(replay, "push_config"), block(audit, "push_config")
    assert block(replay_push, "oidc_token") == block(audit_push, "oidc_token")
    assert replay_push["push_endpoint"].removesuffix("/${google_pubsub_topic.audit_replay.id}") == audit_push[
        "push_endpoint"
    ].removesuffix("/${local.gcr_topic_id}")


# ---------------------------------------------------------------------------------------------------------
# Issue #18: a first apply that succeeds, no secret in state, least privilege, operating
# ---------------------------------------------------------------------------------------------------------

# Cloud Monitoring's metric-absence docs: absence durations go "up to a maximum of 23.5 hours".
_ABSENCE_MAX = 84600


def _validation_conditions(variable: str) -> list[str]:
    return [text(rule["condition"]) for rule in variables()[variable].get("validation", [])]


@pytest.mark.parametrize("variable", ["index_refresh_absent_seconds", "sweep_absent_seconds"])
def test_absence_windows_stay_within_23_5_hours(variable: str) -> None:
    assert default(variable) <= _ABSENCE_MAX
    assert f"var.{variable} <= {_ABSENCE_MAX}" in " ".join(_validation_conditions(variable))


def _cron_hour_field_pattern() -> str:
    (condition,) = _validation_conditions("sweep_schedule")
    match = re.fullmatch(r'\$\{can\(regex\("(.+)", var\.sweep_schedule\)\)\}', condition)
    assert match, condition
    return match.group(1).replace("\\\\", "\\")


@pytest.mark.parametrize(
    ("schedule", "accepted"),
    [("23 4,16 * * *", True), ("0 */12 * * *", True), ("0 4-16/12 * * *", True), ("23 4 * * *", False)],
)
def test_sweep_runs_more_than_once_a_day(schedule: str, accepted: bool) -> None:
    # A daily sweep leaves gaps of 24 h and more between summaries, which no absence window of at most
    # 23.5 h covers: the sweep runs twice a day, and a run that leaves no summary pages before the next.
    assert bool(re.search(_cron_hour_field_pattern(), schedule)) is accepted
    assert re.search(_cron_hour_field_pattern(), default("sweep_schedule"))
    hours = default("sweep_schedule").split()[1].split(",")
    assert len(hours) == 2 and abs(int(hours[1]) - int(hours[0])) == 12
    assert 12 * 3600 + default("sweep_timeout_seconds") < default("sweep_absent_seconds")


def test_log_metrics_name_the_functions_by_plan_time_names() -> None:
    # Metrics that referred to the function resources waited for the ten-minute builds, and their alerts
    # followed a minute later, before the metrics had propagated (provider issue #11102).
    for key, body in log_metrics().items():
        assert "google_cloudfunctions2_function" not in text(body), key
        assert _FUNCTION_NAME.search(text(body["filter"])), key
    names = locals_()["function_names"]
    for key, function in resources("google_cloudfunctions2_function").items():
        assert function["name"] == f'${{local.function_names["{key}"]}}'
        assert names[key] == f"${{var.name_prefix}}-{key}"
    # The policies on those metrics wait for the builds, which gives the metrics their ten minutes.
    builds = {f"${{google_cloudfunctions2_function.{key}}}" for key in resources("google_cloudfunctions2_function")}
    for name in ("log_alarms", *LIVENESS_LOGS):
        assert builds <= set(resource("google_monitoring_alert_policy", name)["depends_on"]), name
    assert builds <= set(resource("google_monitoring_dashboard", "auditor")["depends_on"])


def _dead_letter_seconds(attempts: int, minimum: float, maximum: float) -> float:
    return float(sum(min(maximum, minimum * 2**attempt) for attempt in range(attempts - 1)))


def test_backlog_alert_opens_after_the_pending_grace_and_before_dead_letters() -> None:
    policy = resource("google_monitoring_alert_policy", "backlog")
    conditions = {text(rule["condition"]) for rule in block(policy, "lifecycle")["precondition"]}
    assert conditions == {
        "${local.backlog_alert_seconds > var.pending_grace_seconds}",
        "${local.backlog_alert_seconds < local.audit_dead_letter_seconds}",
    }
    assert locals_()["backlog_alert_seconds"] == (
        "${var.backlog_age_threshold_seconds + var.backlog_age_duration_seconds}"
    )
    dead_letter = text(locals_()["audit_dead_letter_seconds"])
    for name in ("audit_max_delivery_attempts", "audit_min_backoff", "audit_max_backoff"):
        assert f"var.{name}" in dead_letter
    # The defaults satisfy both: RETRY `index behind` for the grace does not page, a real backlog does.
    opens = default("backlog_age_threshold_seconds") + default("backlog_age_duration_seconds")
    seconds = [float(default(name).removesuffix("s")) for name in ("audit_min_backoff", "audit_max_backoff")]
    assert (
        default("pending_grace_seconds")
        < opens
        < _dead_letter_seconds(default("audit_max_delivery_attempts"), *seconds)
    )


def test_push_failure_alert_covers_every_push_subscription() -> None:
    policy = resource("google_monitoring_alert_policy", "push_failures")
    ((_, condition),) = _conditions(policy)
    watched = set(re.findall(r"\$\{google_pubsub_subscription\.([a-z_]+)\.name\}", text(condition["filter"])))
    pushing = {name for name, body in resources("google_pubsub_subscription").items() if body.get("push_config")}
    assert watched == pushing == {"audit", "audit_replay", "sync_queue"}


def test_no_iam_in_the_registry_project_by_default() -> None:
    assert default("grant_registry_reader") is False
    for name, body in resources("google_project_iam_member").items():
        if "registry_project" in body["project"] or "each.value" in body["project"]:
            assert "var.grant_registry_reader" in (body.get("count", "") + body.get("for_each", "")), name
    assert resources("google_project_iam_audit_config").keys() == {"storage_writes"}


def test_index_writes_are_recorded_by_data_write_audit_logs() -> None:
    audit = resource("google_project_iam_audit_config", "storage_writes")
    assert (audit["project"], audit["service"]) == ("${var.project}", "storage.googleapis.com")
    assert [config["log_type"] for config in audit["audit_log_config"]] == ["DATA_WRITE"]
    index_bucket = resource("google_storage_bucket", "index")
    assert index_bucket["project"] == audit["project"]
    skip = next(
        line for line in (MODULE / "main.tf").read_text().splitlines() if "CKV_GCP_62:Writes to the index" in line
    )
    assert "google_project_iam_audit_config.storage_writes" in skip


def test_audit_subscription_keeps_acknowledged_events_for_a_seek() -> None:
    _, subscription = _audit_subscription()
    assert subscription["retain_acked_messages"] is True
    assert subscription["message_retention_duration"] == "${var.audit_message_retention}"
    assert default("audit_message_retention") == "604800s", "seven days to seek back to"


def test_dashboard_json_sends_no_field_the_api_drops() -> None:
    # Provider issue #16173: fields at their defaults come back absent and show a diff on every plan.
    dashboard = text(resource("google_monitoring_dashboard", "auditor")["dashboard_json"])
    assert "REDUCE_NONE" not in dashboard
    # A position of 0 is left out rather than sent ...
    assert "(position % 2) == 0 ? {} : {xPos = 6}" in dashboard
    assert "position < 2 ? {} : {yPos = floor(position / 2) * 4}" in dashboard
    # ... and so are the reducer and the group-by of a chart that groups by nothing.
    grouped = '{crossSeriesReducer = "REDUCE_SUM", groupByFields = group} if length(group) > 0] ...)'
    assert f"[for group in [chart.group] : {grouped}" in dashboard
    assert any(chart["group"] == [] for chart in locals_()["dashboard_charts"]), "the case the filter is for"


def test_environment_of_the_signature_checks_and_the_order_guard() -> None:
    _, audit = function_by_entry_point("audit")
    _, sync = function_by_entry_point("sync_index")
    audit_env = block(audit, "service_config")["environment_variables"]
    sync_env = block(sync, "service_config")["environment_variables"]
    assert audit_env["AUDITOR_PARENT_WAIT_SECONDS"] == "${tostring(var.parent_wait_seconds)}"
    assert default("parent_wait_seconds") == 600
    assert audit_env["AUDITOR_SIGNERS"] == '${join(",", var.signers)}'
    assert default("signers") == ["krel-trust@k8s-releng-prod.iam.gserviceaccount.com=https://accounts.google.com"]
    assert audit_env["AUDITOR_TRUSTED_ROOT"] == "${var.trusted_root}"
    assert default("trusted_root") == "", "empty is the library's public-good root, as for every unset setting"
    assert default("signing_registry") == "us-central1-docker.pkg.dev/k8s-artifacts-prod/images"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", default("signed_since"))
    assert "timeadd(var.signed_since" in " ".join(_validation_conditions("signed_since"))
    assert "var.compare_url" in sync_env["AUDITOR_COMPARE_URL"]
    assert "{base}...{head}" in sync_env["AUDITOR_COMPARE_URL"]
    assert "${var.k8s_io_repository}" in sync_env["AUDITOR_COMPARE_URL"]
    for absent in ("AUDITOR_SIGNERS", "AUDITOR_SIGNING_REGISTRY", "AUDITOR_SIGNED_SINCE"):
        assert absent not in sync_env
    assert "AUDITOR_SIGNING_REGISTRY" not in audit_env and "AUDITOR_SIGNED_SINCE" not in audit_env


def test_the_docs_require_a_gcs_backend_and_say_what_an_operator_does_after_an_apply() -> None:
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    assert "**A GCS backend is required.**" in deploy
    assert 'backend "gcs"' in deploy
    runbook = RUNBOOK.read_text()
    # Seek back: the acknowledged events the audit subscription retains, beside audit --replay.
    assert "gcloud pubsub subscriptions seek registry-auditor-audit --project=$PROJECT --time=" in runbook
    assert "audit --index" in runbook and "--replay" in runbook
    # An apply that changes a policy re-arms its absence condition only after one data point.
    assert "needs one data point after a policy is created or changed" in runbook.replace("\n", " ")
    # How a resync or queued rebuild is authenticated, step by step in deploy.md.
    for needle in ("AUDITOR_OIDC_AUDIENCE", "AUDITOR_OIDC_INVOKERS", "Both variables or neither"):
        assert needle in deploy
