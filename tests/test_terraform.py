"""Wiring of the Terraform module in terraform/.

Providers cannot be downloaded here, so `terraform validate` cannot run; these tests parse the module with
python-hcl2 and check what validate would not catch either: that the pieces point at each other.
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest

from function.services import webhook

ROOT = Path(__file__).resolve().parent.parent
MODULE = ROOT / "terraform"
MAIN_PY = ROOT / "main.py"

Body = dict[str, Any]

# Only the prefixes of providers this module uses, so that dotted words in filters and docs never count. The
# external provider's one data source has no prefix and counts only after "data.".
_RESOURCE_REF = re.compile(
    r"\b(data\.)?((?:google|random|archive)_[a-z0-9_]+|(?<=data\.)external)\.([a-z_][a-z0-9_-]*)"
)
_EXTERNAL_SIGNATURE = re.compile(r"\bdata\.external\.([a-z_][a-z0-9_-]*)\.result\.signature\b")
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
    """`resource` or `data` blocks as {type: {name: body}}."""
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


def function_by_entry_point(entry_point: str) -> tuple[str, Body]:
    found = [
        (name, body)
        for name, body in resources("google_cloudfunctions2_function").items()
        if block(body, "build_config").get("entry_point") == entry_point
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
    module = _module()
    defined_locals = set(locals_())
    declared = {(rtype, name) for rtype, named in _labelled("resource").items() for name in named}
    declared_data = {(rtype, name) for rtype, named in _labelled("data").items() for name in named}
    used_locals: set[str] = set()
    for expression in strings(module):
        used_locals.update(_LOCAL_REF.findall(expression))
        for is_data, rtype, name in _RESOURCE_REF.findall(expression):
            target = declared_data if is_data else declared
            assert (rtype, name) in target, f"{expression!r} refers to undeclared {is_data}{rtype}.{name}"
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
    assert "k8s-artifacts-prod" not in everything
    assert not re.search(r"\b[a-z0-9-]+@[a-z0-9-]+\.iam\.gserviceaccount\.com", everything)


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
    assert entry_points == {"audit", "sync_index"}
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
        build = block(body, "build_config")
        assert build["runtime"] == "${var.runtime}", name
        source = block(block(build, "source"), "storage_source")
        assert source["bucket"] == "${google_storage_bucket.source.name}"
        assert source["object"] == "${google_storage_bucket_object.source.name}"
        account = service_account(block(body, "service_config")["service_account_email"])
        assert account is not None, f"{name} runs as the default compute account"
        accounts.append(account)
    assert len(accounts) == len(set(accounts)), "functions share a service account"


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
    sync_uri = f"${{google_cloudfunctions2_function.{sync_name}.service_config[0].uri}}"
    assert target["uri"] == sync_uri

    # A public sync_index does not look at a Google token; a private one gets it checked by Cloud Run IAM.
    assert "oidc_token" not in target, "the OIDC token must depend on var.sync_public"
    dynamic = [entry["oidc_token"] for entry in target.get("dynamic", []) if "oidc_token" in entry]
    assert len(dynamic) == 1, "expected one dynamic oidc_token block"
    oidc = dynamic[0]
    assert oidc["for_each"].startswith("${var.sync_public ? [] : ["), oidc["for_each"]
    content = block(oidc, "content")
    assert content["audience"] in {sync_uri, "${oidc_token.value}"}
    if content["audience"] != sync_uri:
        assert oidc["for_each"] == f"${{var.sync_public ? [] : [{sync_uri[2:-1]}]}}"
    caller = service_account(content["service_account_email"])
    assert caller is not None
    grants = [
        body
        for body in resources("google_cloud_run_service_iam_member").values()
        if service_account(body["member"]) == caller
    ]
    assert [(g["service"], g["role"], g.get("count")) for g in grants] == [
        (f"${{google_cloudfunctions2_function.{sync_name}.name}}", "roles/run.invoker", "${var.sync_public ? 0 : 1}")
    ]


# ---------------------------------------------------------------------------------------------------------
# Resync: signed like a GitHub push, because sync_index checks X-Hub-Signature-256 on every request
# ---------------------------------------------------------------------------------------------------------


def _resync_job() -> Body:
    jobs = resources("google_cloud_scheduler_job")
    assert len(jobs) == 1
    (job,) = jobs.values()
    return job


def _resync_signature_source() -> tuple[str, Body]:
    headers = block(_resync_job(), "http_target")["headers"]
    match = _EXTERNAL_SIGNATURE.search(headers["X-Hub-Signature-256"])
    assert match, f"X-Hub-Signature-256 does not come from an external data source: {headers}"
    externals = _labelled("data").get("external", {})
    assert match.group(1) in externals, f"data.external.{match.group(1)} is not declared"
    return match.group(1), externals[match.group(1)]


def _signature_program() -> list[str]:
    """The external data source's program, as Terraform runs it from the module directory."""
    _, source = _resync_signature_source()
    program = source["program"]
    assert isinstance(program, list)
    assert all(isinstance(part, str) for part in program)
    return [part.replace("${path.module}", str(MODULE)) for part in program]


def _signature_script() -> Path:
    _, source = _resync_signature_source()
    script: str = source["program"][-1]
    assert script.startswith("${path.module}/"), "the signing script must ship with the module"
    return MODULE / script.removeprefix("${path.module}/")


def test_resync_job_sends_the_signature_from_the_external_data_source() -> None:
    target = block(_resync_job(), "http_target")
    headers = target["headers"]
    assert headers["Content-Type"] == "application/json"
    # Without X-GitHub-Event, sync_index treats the request as a resync of the branch head.
    assert "X-GitHub-Event" not in headers
    _, source = _resync_signature_source()

    # The signature covers exactly the bytes the job sends ...
    assert target["body"] == "${base64encode(var.resync_body)}"
    query = source["query"]
    assert set(query) == {"secret", "body"}
    assert query["body"] == "${var.resync_body}"
    # ... keyed with the secret sync_index reads as AUDITOR_WEBHOOK_SECRET.
    assert query["secret"] == "${google_secret_manager_secret_version.webhook.secret_data}"
    version = resource("google_secret_manager_secret_version", "webhook")
    assert version["secret"] == "${google_secret_manager_secret.webhook.id}"
    _, sync = function_by_entry_point("sync_index")
    secret_env = block(block(sync, "service_config"), "secret_environment_variables")
    assert secret_env["secret"] == "${google_secret_manager_secret.webhook.secret_id}"
    assert secret_env["version"] == "latest"

    # The secret goes to the script on stdin (the query), never on its command line.
    for part in source["program"]:
        assert "${" not in part.replace("${path.module}", ""), f"program interpolates more than path.module: {part}"


def test_resync_body_names_no_commit() -> None:
    # The signature is static and replayable: the body must only ever ask for the branch head.
    body = default("resync_body")
    assert isinstance(body, str)
    document = json.loads(body)
    assert document == {"resync": True}
    validation = block(variables()["resync_body"], "validation")
    assert "jsondecode(var.resync_body)" in validation["condition"]
    assert "!can(jsondecode(var.resync_body).sha)" in validation["condition"]


def test_signature_script_exists_and_is_executable() -> None:
    script = _signature_script()
    assert script.is_file(), f"{script} is missing"
    assert os.access(script, os.X_OK), f"{script} is not executable (git update-index --chmod=+x)"
    assert script.read_text().startswith("#!/bin/sh\n")
    assert _signature_program()[:-1] in ([], ["sh"]), "the script must run without bash or other interpreters"


_SIGNATURE_SAMPLES = [
    ("s3cr3t", '{"resync":true}'),
    ('it\'s a $(secret) with `quotes` \\ and "more"; ünïcode', '{"resync": true, "note": "x\ny"}'),
    ("x" * 200, ""),
]


@pytest.mark.parametrize(("secret", "body"), _SIGNATURE_SAMPLES, ids=["plain", "metacharacters", "empty-body"])
def test_signature_script_computes_the_github_signature(secret: str, body: str) -> None:
    if shutil.which("sh") is None or shutil.which("python3") is None:
        pytest.skip("the signing script needs sh and python3")
    expected = "sha256=" + hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    # Once as Terraform runs it (the data source's program), once directly.
    for command in (_signature_program(), [str(_signature_script())]):
        result = subprocess.run(
            command,
            # Raw UTF-8, as Terraform writes the query, whatever the locale.
            input=json.dumps({"secret": secret, "body": body}, ensure_ascii=False).encode(),
            capture_output=True,
            check=False,
            timeout=30,
            env={**os.environ, "LC_ALL": "C"},
        )
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        # The external provider wants one JSON object of strings.
        assert json.loads(result.stdout) == {"signature": expected}
    assert webhook.verify(secret, body.encode(), expected), "sync_index would refuse the scheduler's request"


@pytest.mark.parametrize(
    "stdin",
    [
        "",
        "not json",
        '["hunter2-secret"]',
        '{"secret": "hunter2-secret"}',
        '{"secret": "", "body": "{}"}',
        '{"secret": "hunter2-secret", "body": 1}',
    ],
)
def test_signature_script_fails_without_echoing_the_secret(stdin: str) -> None:
    if shutil.which("sh") is None or shutil.which("python3") is None:
        pytest.skip("the signing script needs sh and python3")
    result = subprocess.run(_signature_program(), input=stdin, capture_output=True, text=True, check=False, timeout=30)
    assert result.returncode != 0
    assert result.stderr.strip()
    assert "hunter2" not in result.stdout + result.stderr


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
        (name, body) for name, body in resources("google_pubsub_subscription").items() if body.get("push_config")
    ]
    assert len(pushing) == 1, "expected exactly one push subscription"
    return pushing[0]


def test_subscription_feeds_the_gcr_topic_to_the_audit_function() -> None:
    audit_name, audit = function_by_entry_point("audit")
    _, subscription = _audit_subscription()

    assert subscription["topic"] == "${local.gcr_topic_id}"
    assert locals_()["gcr_topic_id"] == "projects/${local.registry_project}/topics/${var.gcr_topic}"
    assert locals_()["registry_project"] == "${coalesce(var.registry_project, var.project)}"
    assert default("gcr_topic") == "gcr"

    push = block(subscription, "push_config")
    audit_uri = f"${{google_cloudfunctions2_function.{audit_name}.service_config[0].uri}}"
    assert push["push_endpoint"].startswith(audit_uri)
    oidc = block(push, "oidc_token")
    assert oidc["audience"] == audit_uri
    pusher = service_account(oidc["service_account_email"])
    assert pusher is not None
    invokers = [
        body
        for body in resources("google_cloud_run_service_iam_member").values()
        if service_account(body["member"]) == pusher
    ]
    assert [(g["service"], g["role"]) for g in invokers] == [
        (f"${{google_cloudfunctions2_function.{audit_name}.name}}", "roles/run.invoker")
    ]
    # A second delivery path would audit every event twice, and the Eventarc one without dead letters.
    assert "event_trigger" not in audit
    assert resources("google_eventarc_trigger") == {}


def test_dead_letter_policy_and_retries() -> None:
    sub_name, subscription = _audit_subscription()

    dead_letter = block(subscription, "dead_letter_policy")
    match = re.fullmatch(r"\$\{google_pubsub_topic\.([a-z0-9_]+)\.id\}", dead_letter["dead_letter_topic"])
    assert match, dead_letter
    topic_name = match.group(1)
    resource("google_pubsub_topic", topic_name)
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
        if body["topic"] == f"${{google_pubsub_topic.{topic_name}.id}}"
    }
    assert len(holds) == 1
    ((hold_name, hold),) = holds.items()
    assert "push_config" not in hold, "dead letters must wait for an operator, not be pushed anywhere"
    assert block(hold, "expiration_policy")["ttl"] == ""
    assert f"${{google_pubsub_subscription.{hold_name}}}" in subscription["depends_on"]

    # Dead lettering is done by the Pub/Sub service agent, which needs both grants.
    agent = locals_()["pubsub_service_agent"]
    assert agent.endswith("@gcp-sa-pubsub.iam.gserviceaccount.com")
    publishers = [
        body
        for body in resources("google_pubsub_topic_iam_member").values()
        if body["topic"] == f"${{google_pubsub_topic.{topic_name}.name}}"
    ]
    assert [(p["role"], p["member"]) for p in publishers] == [
        ("roles/pubsub.publisher", "${local.pubsub_service_agent}")
    ]
    subscribers = [
        body
        for body in resources("google_pubsub_subscription_iam_member").values()
        if body["subscription"] == f"${{google_pubsub_subscription.{sub_name}.name}}"
    ]
    assert [(s["role"], s["member"]) for s in subscribers] == [
        ("roles/pubsub.subscriber", "${local.pubsub_service_agent}")
    ]


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
    }
    assert _bucket_of_grant(account) == "${google_storage_bucket.index.name}"
    (secret_grant,) = resources("google_secret_manager_secret_iam_member").values()
    assert secret_grant["secret_id"] == "${google_secret_manager_secret.webhook.id}"


# ---------------------------------------------------------------------------------------------------------
# Alerting
# ---------------------------------------------------------------------------------------------------------


def test_rejections_raise_an_alert() -> None:
    audit_name, _ = function_by_entry_point("audit")
    metrics = resources("google_logging_metric")
    assert len(metrics) == 1
    ((metric_name, metric),) = metrics.items()
    log_filter = text(metric["filter"])
    assert 'resource.type="cloud_run_revision"' in log_filter
    assert f'resource.labels.service_name="${{google_cloudfunctions2_function.{audit_name}.name}}"' in log_filter
    assert 'jsonPayload.verdict=("REJECTED" OR "MALFORMED")' in log_filter

    policies = [
        body
        for body in resources("google_monitoring_alert_policy").values()
        if f"google_logging_metric.{metric_name}.name" in text(body)
    ]
    assert len(policies) == 1
    policy = policies[0]
    assert policy["notification_channels"] == "${var.alert_channels}"
    threshold = block(block(policy, "conditions"), "condition_threshold")
    metric_filter = text(threshold["filter"])
    assert metric_filter.startswith('resource.type="cloud_run_revision"')
    assert f'metric.type="logging.googleapis.com/user/${{google_logging_metric.{metric_name}.name}}"' in metric_filter
    assert threshold["comparison"] == "COMPARISON_GT"
    assert threshold["threshold_value"] == 0


def test_dead_letters_raise_an_alert() -> None:
    hold_names = [name for name, body in resources("google_pubsub_subscription").items() if not body.get("push_config")]
    assert len(hold_names) == 1
    policies = [
        body
        for body in resources("google_monitoring_alert_policy").values()
        if "pubsub.googleapis.com/subscription/num_undelivered_messages" in text(body)
    ]
    assert len(policies) == 1
    policy = policies[0]
    assert policy["notification_channels"] == "${var.alert_channels}"
    threshold = block(block(policy, "conditions"), "condition_threshold")
    hold_filter = text(threshold["filter"])
    assert f'resource.labels.subscription_id="${{google_pubsub_subscription.{hold_names[0]}.name}}"' in hold_filter
    assert threshold["comparison"] == "COMPARISON_GT"
    assert threshold["threshold_value"] == 0
