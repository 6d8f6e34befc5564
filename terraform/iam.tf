# One service account per job, each granted on the narrowest resource that works. No account gets a
# project-level admin, owner or editor role: the auditor runs next to the registries it watches.

resource "google_service_account" "audit" {
  project      = var.project
  account_id   = "${var.name_prefix}-audit"
  display_name = "Registry auditor: audit function"
}

resource "google_service_account" "sync" {
  project      = var.project
  account_id   = "${var.name_prefix}-sync"
  display_name = "Registry auditor: index sync function"
}

resource "google_service_account" "push" {
  project      = var.project
  account_id   = "${var.name_prefix}-push"
  display_name = "Registry auditor: Pub/Sub push identity towards the audit function"
}

resource "google_service_account" "scheduler" {
  project      = var.project
  account_id   = "${var.name_prefix}-scheduler"
  display_name = "Registry auditor: periodic resync caller"
}

resource "google_service_account" "build" {
  project      = var.project
  account_id   = "${var.name_prefix}-build"
  display_name = "Registry auditor: Cloud Build of the function images"
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

# ---------------------------------------------------------------------------------------------------------
# Invokers: Pub/Sub may call audit, the scheduler may call a private sync, nobody else gets a Google identity in.
# ---------------------------------------------------------------------------------------------------------

resource "google_cloud_run_service_iam_member" "audit_push_invoker" {
  project  = var.project
  location = google_cloudfunctions2_function.audit.location
  service  = google_cloudfunctions2_function.audit.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.push.email}"
}

# Only needed while sync_index is private: with sync_public, allUsers may invoke it and the scheduler's
# request gets in on its HMAC signature alone.
resource "google_cloud_run_service_iam_member" "sync_scheduler_invoker" {
  count = var.sync_public ? 0 : 1

  project  = var.project
  location = google_cloudfunctions2_function.sync.location
  service  = google_cloudfunctions2_function.sync.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.scheduler.email}"
}

# GitHub cannot present a Google identity, so its webhook reaches sync_index only as allUsers. The function
# answers 401 to every request without a valid X-Hub-Signature-256, which keeps the rebuild closed.
resource "google_cloud_run_service_iam_member" "sync_public" {
  count = var.sync_public ? 1 : 0

  project  = var.project
  location = google_cloudfunctions2_function.sync.location
  service  = google_cloudfunctions2_function.sync.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# Pub/Sub mints the push OIDC token as the push account. Projects created before April 2021 need this
# grant explicitly; granting it on the one account keeps it harmless elsewhere.
resource "google_service_account_iam_member" "pubsub_push_token_creator" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}

# ---------------------------------------------------------------------------------------------------------
# build: what Cloud Build needs to turn the uploaded source into the function images.
# ---------------------------------------------------------------------------------------------------------

resource "google_project_iam_member" "build" {
  for_each = toset([
    "roles/logging.logWriter",
    # Cloud Functions copies the uploaded source into its own gcf-v2-sources-* bucket before the build
    # reads it, so a grant on the source bucket alone is not enough. Read-only.
    "roles/storage.objectViewer",
  ])

  project = var.project
  role    = each.value
  member  = "serviceAccount:${google_service_account.build.email}"
}

resource "google_artifact_registry_repository_iam_member" "build_writer" {
  project    = var.project
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.build.email}"
}
