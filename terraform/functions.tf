# ---------------------------------------------------------------------------------------------------------
# audit: one registry event in, one verdict out.
#
# Deliberately without `event_trigger`: the Pub/Sub subscription that an Eventarc trigger creates cannot be
# given a dead-letter topic, so pubsub.tf creates its own push subscription to this function's URL instead.
# main.py registers `audit` with @functions_framework.cloud_event, which turns the plain Pub/Sub push body
# into the same CloudEvent an Eventarc trigger would deliver.
# ---------------------------------------------------------------------------------------------------------

resource "google_cloudfunctions2_function" "audit" {
  project     = var.project
  location    = var.region
  name        = local.function_names["audit"]
  description = "Audits every change to the production registries against the promotion manifests."

  build_config {
    runtime           = var.runtime
    entry_point       = "audit"
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.audit.email
    available_memory                 = var.audit_memory
    available_cpu                    = var.audit_cpu
    max_instance_request_concurrency = var.audit_concurrency
    timeout_seconds                  = var.audit_timeout_seconds
    min_instance_count               = var.audit_min_instances
    max_instance_count               = var.audit_max_instances
    ingress_settings                 = var.audit_ingress
    all_traffic_on_latest_revision   = true

    environment_variables = {
      AUDITOR_INDEX_URI = local.index_uri
      # Lets verdict lines carry the full trace name, so Cloud Logging correlates them with the request.
      GOOGLE_CLOUD_PROJECT          = var.project
      AUDITOR_REFRESH_SECONDS       = tostring(var.audit_refresh_seconds)
      AUDITOR_PENDING_GRACE_SECONDS = tostring(var.pending_grace_seconds)
      AUDITOR_FROZEN_PREFIXES       = join(",", var.frozen_prefixes)
      AUDITOR_DEADLINE_SECONDS      = tostring(var.audit_deadline_seconds)
      AUDITOR_PARENT_WAIT_SECONDS   = tostring(var.parent_wait_seconds)
      AUDITOR_SIGNERS               = join(",", var.signers)
      # Empty, like every unset AUDITOR_* setting: the public-good root the verification library ships.
      AUDITOR_TRUSTED_ROOT = var.trusted_root
    }
  }

  lifecycle {
    precondition {
      # The verdict line (RETRY at worst) must be written before the platform kills the request.
      condition     = var.audit_deadline_seconds < var.audit_timeout_seconds
      error_message = "audit_deadline_seconds must be below audit_timeout_seconds, or a slow decision ends without a verdict line."
    }
  }

  depends_on = [
    google_project_service.this,
    google_storage_bucket_iam_member.audit_index_reader,
    time_sleep.build_grants,
  ]
}

# ---------------------------------------------------------------------------------------------------------
# sync_index: GitHub push webhook of k8s.io and the scheduler's periodic resync. It answers within seconds
# and queues the rebuild for the rebuild function below. The resync carries a Google-signed ID token of the
# scheduler instead of the webhook's HMAC, so the webhook secret is GitHub's alone and nothing replayable
# sits in a job's configuration or in state.
# ---------------------------------------------------------------------------------------------------------

resource "google_secret_manager_secret" "webhook" {
  project   = var.project
  secret_id = "${var.name_prefix}-webhook"

  replication {
    auto {}
  }

  depends_on = [google_project_service.this]
}

# Ephemeral and write-only: the value goes from the plan straight to Secret Manager and is in no state, no
# plan file and no data source. It is written again only when `webhook_secret_version` changes.
ephemeral "random_password" "webhook" {
  length  = 48
  special = false
}

resource "google_secret_manager_secret_version" "webhook" {
  secret                 = google_secret_manager_secret.webhook.id
  secret_data_wo         = var.webhook_secret != null ? var.webhook_secret : ephemeral.random_password.webhook.result
  secret_data_wo_version = var.webhook_secret_version

  # A rotation adds the new version before the old one goes, so an instance starting in between still
  # finds a `latest` to read.
  lifecycle {
    create_before_destroy = true
  }
}

# Optional: a GitHub token for the head and compare calls, in a secret the operator creates with gcloud.
# Looked up by name only: the data source reads the secret's metadata, never a version's payload.
data "google_secret_manager_secret" "github_token" {
  count = var.github_token_secret == null ? 0 : 1

  project   = var.project
  secret_id = var.github_token_secret
}

resource "google_cloudfunctions2_function" "sync" {
  #checkov:skip=CKV_GCP_124:GitHub's push webhook comes from the internet; sync_index refuses every push without a valid X-Hub-Signature-256 HMAC and every resync or queued rebuild without a Google-signed OIDC token of an account in AUDITOR_OIDC_INVOKERS.
  project     = var.project
  location    = var.region
  name        = local.function_names["sync"]
  description = "Takes k8s.io pushes and resyncs, records them as pending and queues their index rebuilds."

  build_config {
    runtime           = var.runtime
    entry_point       = "sync_index"
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email = google_service_account.sync.email
    available_memory      = var.sync_memory
    timeout_seconds       = var.sync_timeout_seconds
    min_instance_count    = 0
    # Its own capacity: GitHub's deliveries are never answered 429 because rebuilds hold every instance,
    # since the rebuilds run in the rebuild function.
    max_instance_count               = var.sync_webhook_max_instances
    max_instance_request_concurrency = 1
    # GitHub's webhook comes from the internet; the function checks its HMAC signature, and the resync's OIDC
    # token, itself.
    ingress_settings               = "ALLOW_ALL"
    all_traffic_on_latest_revision = true

    environment_variables = {
      AUDITOR_INDEX_URI        = local.index_uri
      GOOGLE_CLOUD_PROJECT     = var.project
      AUDITOR_MANIFESTS        = local.manifests_url
      AUDITOR_MANIFESTS_SUBDIR = var.manifests_subdir
      # Pushes to other branches are ignored; a resync rebuilds this branch's head.
      AUDITOR_BRANCH = var.k8s_io_branch
      # GitHub gives a webhook 10 s: a verified push is queued here and rebuilt when it comes back.
      AUDITOR_SYNC_QUEUE = google_pubsub_topic.sync_queue.id
      # Unset, the function would follow kubernetes/k8s.io whatever `k8s_io_repository` says.
      AUDITOR_HEAD_URL      = coalesce(var.head_url, "https://api.github.com/repos/${var.k8s_io_repository}/commits/{branch}")
      AUDITOR_COMPARE_URL   = coalesce(var.compare_url, "https://api.github.com/repos/${var.k8s_io_repository}/compare/{base}...{head}")
      AUDITOR_OIDC_AUDIENCE = local.function_urls["sync"]
      AUDITOR_OIDC_INVOKERS = google_service_account.scheduler.email
    }

    secret_environment_variables {
      key        = "AUDITOR_WEBHOOK_SECRET"
      project_id = var.project
      secret     = google_secret_manager_secret.webhook.secret_id
      version    = "latest"
    }

    dynamic "secret_environment_variables" {
      for_each = data.google_secret_manager_secret.github_token
      content {
        key        = "AUDITOR_GITHUB_TOKEN"
        project_id = var.project
        secret     = secret_environment_variables.value.secret_id
        version    = "latest"
      }
    }
  }

  depends_on = [
    google_project_service.this,
    google_secret_manager_secret_version.webhook,
    google_secret_manager_secret_iam_member.sync_webhook_accessor,
    google_secret_manager_secret_iam_member.sync_github_token_accessor,
    google_storage_bucket_iam_member.sync_index_writer,
    google_pubsub_topic_iam_member.sync_queue_publisher,
    time_sleep.build_grants,
  ]
}

# ---------------------------------------------------------------------------------------------------------
# The same sync_index code, deployed a second time for the queued rebuilds alone: private, pushed to by the
# sync queue, at most `sync_max_instances` rebuilds at once. The same account and settings as `sync` but its
# own OIDC audience and invoker, and no webhook secret: GitHub never reaches it, so it takes no push, and a
# delivered rebuild request is rebuilt here, never queued again.
# ---------------------------------------------------------------------------------------------------------

resource "google_cloudfunctions2_function" "rebuild" {
  project     = var.project
  location    = var.region
  name        = local.function_names["rebuild"]
  description = "Rebuilds the auditor's digest index from the promotion manifests of a k8s.io commit."

  build_config {
    runtime           = var.runtime
    entry_point       = "sync_index"
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email = google_service_account.sync.email
    available_memory      = var.sync_memory
    timeout_seconds       = var.sync_timeout_seconds
    min_instance_count    = 0
    max_instance_count    = var.sync_max_instances
    # One rebuild per instance: a rebuild is CPU- and memory-bound.
    max_instance_request_concurrency = 1
    # Only the sync queue's pushes, from this project, reach it.
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true

    environment_variables = {
      AUDITOR_INDEX_URI        = local.index_uri
      GOOGLE_CLOUD_PROJECT     = var.project
      AUDITOR_MANIFESTS        = local.manifests_url
      AUDITOR_MANIFESTS_SUBDIR = var.manifests_subdir
      AUDITOR_BRANCH           = var.k8s_io_branch
      # Only for the follow-up of a rebuild whose resolution rounds ran out of time.
      AUDITOR_SYNC_QUEUE = google_pubsub_topic.sync_queue.id
      # Unset, the function would follow kubernetes/k8s.io whatever `k8s_io_repository` says.
      AUDITOR_HEAD_URL      = coalesce(var.head_url, "https://api.github.com/repos/${var.k8s_io_repository}/commits/{branch}")
      AUDITOR_COMPARE_URL   = coalesce(var.compare_url, "https://api.github.com/repos/${var.k8s_io_repository}/compare/{base}...{head}")
      AUDITOR_OIDC_AUDIENCE = local.function_urls["rebuild"]
      AUDITOR_OIDC_INVOKERS = google_service_account.sync_queue.email
    }

    dynamic "secret_environment_variables" {
      for_each = data.google_secret_manager_secret.github_token
      content {
        key        = "AUDITOR_GITHUB_TOKEN"
        project_id = var.project
        secret     = secret_environment_variables.value.secret_id
        version    = "latest"
      }
    }
  }

  depends_on = [
    google_project_service.this,
    google_secret_manager_secret_iam_member.sync_github_token_accessor,
    google_storage_bucket_iam_member.sync_index_writer,
    google_pubsub_topic_iam_member.sync_queue_publisher,
    time_sleep.build_grants,
  ]
}

# ---------------------------------------------------------------------------------------------------------
# sweep: twice a day, what every destination registry holds, reconciled with the index. Events can be lost
# and promotions can stop half-way through the regions; only a listing shows either.
# ---------------------------------------------------------------------------------------------------------

resource "google_cloudfunctions2_function" "sweep" {
  project     = var.project
  location    = var.region
  name        = local.function_names["sweep"]
  description = "Reconciles what the production registries hold with the promotion manifests."

  build_config {
    runtime           = var.runtime
    entry_point       = "sweep"
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    service_account_email = google_service_account.sweep.email
    available_memory      = var.sweep_memory
    timeout_seconds       = var.sweep_timeout_seconds
    min_instance_count    = 0
    # One sweep at a time: a second one would only double the registry traffic.
    max_instance_count               = 1
    max_instance_request_concurrency = 1
    # Cloud Scheduler in the same project counts as internal traffic.
    ingress_settings               = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision = true

    environment_variables = {
      AUDITOR_INDEX_URI       = local.index_uri
      GOOGLE_CLOUD_PROJECT    = var.project
      AUDITOR_FROZEN_PREFIXES = join(",", var.frozen_prefixes)
      # The sweep's own budget ends two minutes before the function's timeout, so that what it did not
      # reach is named in its summary line instead of the instance being cut off without one.
      AUDITOR_SWEEP_MAX_SECONDS = tostring(max(30, var.sweep_timeout_seconds - 120))
      AUDITOR_SIGNERS           = join(",", var.signers)
      AUDITOR_SIGNING_REGISTRY  = var.signing_registry
      # Images promoted before the promoter signed anything raise no `unsigned` on the first sweep.
      AUDITOR_SIGNED_SINCE = var.signed_since
      AUDITOR_TRUSTED_ROOT = var.trusted_root
    }
  }

  depends_on = [
    google_project_service.this,
    google_storage_bucket_iam_member.sweep_index_reader,
    time_sleep.build_grants,
  ]
}
