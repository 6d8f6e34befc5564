# One service account per job, each granted on the narrowest resource that works. No account gets a
# project-level admin, owner or editor role: the auditor runs next to the registries it watches.

resource "google_service_account" "audit" {
  project      = var.project
  account_id   = "${var.name_prefix}-audit"
  display_name = "Registry auditor: audit function"

  depends_on = [google_project_service.this]
}

resource "google_service_account" "sync" {
  project      = var.project
  account_id   = "${var.name_prefix}-sync"
  display_name = "Registry auditor: index sync function"

  depends_on = [google_project_service.this]
}

resource "google_service_account" "push" {
  project      = var.project
  account_id   = "${var.name_prefix}-push"
  display_name = "Registry auditor: Pub/Sub push identity towards the audit function"

  depends_on = [google_project_service.this]
}

# Its own identity, so that sync_index can tell a queued rebuild from a resync and the audit pusher cannot
# reach sync_index at all.
resource "google_service_account" "sync_queue" {
  project      = var.project
  account_id   = "${var.name_prefix}-queue"
  display_name = "Registry auditor: Pub/Sub push identity of queued index rebuilds"

  depends_on = [google_project_service.this]
}

resource "google_service_account" "scheduler" {
  project      = var.project
  account_id   = "${var.name_prefix}-scheduler"
  display_name = "Registry auditor: periodic resync caller"

  depends_on = [google_project_service.this]
}

resource "google_service_account" "sweep" {
  project      = var.project
  account_id   = "${var.name_prefix}-sweep"
  display_name = "Registry auditor: reconciliation sweep (read-only)"

  depends_on = [google_project_service.this]
}

resource "google_service_account" "build" {
  project      = var.project
  account_id   = "${var.name_prefix}-build"
  display_name = "Registry auditor: Cloud Build of the function images"

  depends_on = [google_project_service.this]
}

# ---------------------------------------------------------------------------------------------------------
# audit: read the index, read the registries, write logs.
# ---------------------------------------------------------------------------------------------------------

resource "google_storage_bucket_iam_member" "audit_index_reader" {
  bucket = google_storage_bucket.index.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.audit.email}"
}

resource "google_project_iam_member" "audit_registry_reader" {
  count = var.grant_registry_reader ? 1 : 0

  project = local.registry_project
  role    = "roles/artifactregistry.reader"
  member  = "serviceAccount:${google_service_account.audit.email}"
}

resource "google_project_iam_member" "audit_log_writer" {
  project = var.project
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.audit.email}"
}

# ---------------------------------------------------------------------------------------------------------
# sync: overwrite the index object, read the webhook secret, read the registries (manifest-list children).
# ---------------------------------------------------------------------------------------------------------

# objectUser rather than objectCreator: replacing an existing generation needs storage.objects.delete.
resource "google_storage_bucket_iam_member" "sync_index_writer" {
  bucket = google_storage_bucket.index.name
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.sync.email}"
}

resource "google_secret_manager_secret_iam_member" "sync_webhook_accessor" {
  project   = var.project
  secret_id = google_secret_manager_secret.webhook.id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.sync.email}"
}

resource "google_secret_manager_secret_iam_member" "sync_github_token_accessor" {
  for_each = { for secret in data.google_secret_manager_secret.github_token : secret.secret_id => secret.id }

  project   = var.project
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.sync.email}"
}

resource "google_project_iam_member" "sync_registry_reader" {
  count = var.grant_registry_reader ? 1 : 0

  project = local.registry_project
  role    = "roles/artifactregistry.reader"
  member  = "serviceAccount:${google_service_account.sync.email}"
}

resource "google_project_iam_member" "sync_log_writer" {
  project = var.project
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.sync.email}"
}

# The sync queue: a verified push is published as a rebuild request and delivered back to sync_index.
resource "google_pubsub_topic_iam_member" "sync_queue_publisher" {
  project = var.project
  topic   = google_pubsub_topic.sync_queue.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.sync.email}"
}

# ---------------------------------------------------------------------------------------------------------
# sweep: read the index and list the registries; it writes nothing but log lines.
# ---------------------------------------------------------------------------------------------------------

resource "google_storage_bucket_iam_member" "sweep_index_reader" {
  bucket = google_storage_bucket.index.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.sweep.email}"
}

resource "google_project_iam_member" "sweep_registry_reader" {
  for_each = toset(var.grant_registry_reader ? local.sweep_registry_projects : [])

  project = each.value
  role    = "roles/artifactregistry.reader"
  member  = "serviceAccount:${google_service_account.sweep.email}"
}

resource "google_project_iam_member" "sweep_log_writer" {
  project = var.project
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.sweep.email}"
}

# ---------------------------------------------------------------------------------------------------------
# Invokers: Pub/Sub may call audit, the scheduler and the queue a private sync, nobody else gets a Google
# identity in.
# ---------------------------------------------------------------------------------------------------------

resource "google_cloud_run_service_iam_member" "audit_push_invoker" {
  project  = var.project
  location = google_cloudfunctions2_function.audit.location
  service  = google_cloudfunctions2_function.audit.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.push.email}"
}

# Only needed while sync_index is private: with sync_public, allUsers may invoke it and sync_index checks the
# scheduler's OIDC token itself (AUDITOR_OIDC_AUDIENCE, AUDITOR_OIDC_INVOKERS).
resource "google_cloud_run_service_iam_member" "sync_scheduler_invoker" {
  count = var.sync_public ? 0 : 1

  project  = var.project
  location = google_cloudfunctions2_function.sync.location
  service  = google_cloudfunctions2_function.sync.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.scheduler.email}"
}

# The rebuild function is private whatever sync_public says: only the sync queue's pushes start a rebuild.
resource "google_cloud_run_service_iam_member" "rebuild_queue_invoker" {
  project  = var.project
  location = google_cloudfunctions2_function.rebuild.location
  service  = google_cloudfunctions2_function.rebuild.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.sync_queue.email}"
}

# The sweep is private: only the scheduler job may start one.
resource "google_cloud_run_service_iam_member" "sweep_scheduler_invoker" {
  project  = var.project
  location = google_cloudfunctions2_function.sweep.location
  service  = google_cloudfunctions2_function.sweep.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.scheduler.email}"
}

# GitHub cannot present a Google identity, so its webhook reaches sync_index only as allUsers. The function
# answers 401 to a push without a valid X-Hub-Signature-256 and to a resync or queued rebuild without a
# Google-signed token of an invoker, which keeps the rebuild closed.
resource "google_cloud_run_service_iam_member" "sync_public" {
  #checkov:skip=CKV_GCP_102:GitHub's push webhook cannot present a Google identity; sync_index answers 401 to a push without a valid X-Hub-Signature-256 HMAC and to any other request without a Google-signed OIDC token of AUDITOR_OIDC_INVOKERS.
  count = var.sync_public ? 1 : 0

  project  = var.project
  location = google_cloudfunctions2_function.sync.location
  service  = google_cloudfunctions2_function.sync.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# Pub/Sub mints the push OIDC tokens as the push accounts. Projects created before April 2021 need this
# grant explicitly; granting it on these accounts alone keeps it harmless elsewhere.
resource "google_service_account_iam_member" "pubsub_push_token_creator" {
  for_each = {
    push       = google_service_account.push.name
    sync_queue = google_service_account.sync_queue.name
  }

  service_account_id = each.value
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent

  depends_on = [google_project_service.this]
}

moved {
  from = google_service_account_iam_member.pubsub_push_token_creator
  to   = google_service_account_iam_member.pubsub_push_token_creator["push"]
}

# ---------------------------------------------------------------------------------------------------------
# build: what Cloud Build needs to turn the uploaded source into the function images.
# ---------------------------------------------------------------------------------------------------------

resource "google_project_iam_member" "build_log_writer" {
  project = var.project
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.build.email}"
}

# Cloud Functions copies the uploaded source into its own gcf-v2-sources-<number>-<region> bucket, and the
# build reads it from there, never from the source bucket. The bucket's name is Google's, so the grant is
# project-level with a condition that keeps it to those buckets, read-only.
resource "google_project_iam_member" "build_sources_reader" {
  project = var.project
  role    = "roles/storage.objectViewer"
  member  = "serviceAccount:${google_service_account.build.email}"

  condition {
    title       = "gcf-v2-sources buckets only"
    description = "The function sources Cloud Functions copies for its builds."
    expression  = "resource.name.startsWith(\"projects/_/buckets/gcf-v2-sources-\")"
  }
}

moved {
  from = google_project_iam_member.build["roles/logging.logWriter"]
  to   = google_project_iam_member.build_log_writer
}

resource "google_artifact_registry_repository_iam_member" "build_writer" {
  project    = var.project
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.build.email}"
}

# IAM grants take a while to reach every Google service: a function build started right after them fails
# on a missing permission. The provider's own cloudfunctions2 builder example waits the same way.
resource "time_sleep" "build_grants" {
  create_duration = "60s"

  triggers = {
    account = google_service_account.build.email
  }

  depends_on = [
    google_project_iam_member.build_log_writer,
    google_project_iam_member.build_sources_reader,
    google_artifact_registry_repository_iam_member.build_writer,
  ]
}
