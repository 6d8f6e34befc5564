locals {
  registry_project = coalesce(var.registry_project, var.project)
  gcr_topic_id     = data.google_pubsub_topic.gcr.id

  # Put on every resource through the providers' default_labels, and on the alert policies as user_labels
  # (which default_labels does not reach): what deployed it, and which instance of the module.
  labels = merge({
    app          = "promotion-auditor"
    instance     = var.name_prefix
    "managed-by" = "terraform"
  }, var.labels)

  # Known at plan time, so that the log-based metrics that name the functions are created at the start of
  # the first apply instead of after the ten-minute builds, and the builds become their wait.
  function_names = {
    audit   = "${var.name_prefix}-audit"
    sync    = "${var.name_prefix}-sync"
    rebuild = "${var.name_prefix}-rebuild"
    sweep   = "${var.name_prefix}-sweep"
  }
  # A gen2 function's cloudfunctions.net URL is built from names alone, so sync_index can be told its own
  # OIDC audience without a cycle; Cloud Functions' samples use this URL as both endpoint and audience.
  function_urls = { for key, name in local.function_names : key => "https://${var.region}-${var.project}.cloudfunctions.net/${name}" }

  index_bucket_name  = coalesce(var.index_bucket_name, "${var.project}-${var.name_prefix}-index")
  source_bucket_name = coalesce(var.source_bucket_name, "${var.project}-${var.name_prefix}-source")
  bucket_location    = coalesce(var.bucket_location, var.region)
  index_uri          = "gs://${google_storage_bucket.index.name}/${var.index_object}"

  manifests_url = coalesce(var.manifests_url, "https://github.com/${var.k8s_io_repository}/archive/{sha}.tar.gz")
  source_dir    = coalesce(var.source_dir, "${path.module}/..")

  # Dead lettering and push tokens are the work of the Pub/Sub service agent of this project. Taken from the
  # wait below, so that every grant to it is made after the wait.
  pubsub_service_agent = "serviceAccount:${time_sleep.pubsub_agent.triggers["email"]}"

  # Unless runbook_url points elsewhere, every alert links to the runbook uploaded below: the one of the code
  # deployed, in the bucket on-call reads already (for `lookup` and `stats`).
  runbook_objects = var.runbook_url == null ? toset(["runbook.md", "oncall.md"]) : toset([])
  runbook         = coalesce(var.runbook_url, "https://storage.cloud.google.com/${local.index_bucket_name}/runbook/runbook.md")

  sweep_registry_projects = length(var.sweep_registry_projects) > 0 ? var.sweep_registry_projects : [local.registry_project]

  apis = [
    "artifactregistry.googleapis.com",
    "cloudbuild.googleapis.com",
    # Project IAM grants go through Resource Manager; the service identity below through Service Usage.
    "cloudresourcemanager.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "serviceusage.googleapis.com",
    "storage.googleapis.com",
  ]
}

resource "google_project_service" "this" {
  for_each = toset(var.enable_apis ? local.apis : [])

  project = var.project
  service = each.value
  # Other workloads in the project may rely on the same APIs.
  disable_on_destroy = false
}

# Enabling the Pub/Sub API does not create its service agent; it appears on first use, and a grant to it
# before then fails with "Service account ... does not exist". Creating it here orders the grants after it.
resource "google_project_service_identity" "pubsub" {
  provider = google-beta

  project = var.project
  service = "pubsub.googleapis.com"

  depends_on = [google_project_service.this]
}

# The agent's email comes back before IAM knows the account: a grant made right away fails with "Service
# account ... does not exist" (terraform-provider-google issue #21931).
resource "time_sleep" "pubsub_agent" {
  create_duration = "60s"

  triggers = {
    email = google_project_service_identity.pubsub.email
  }
}

# Looked up rather than assumed, so that a registry project without the topic fails at plan, naming it,
# instead of as a 404 of the subscription at the end of a ten-minute apply.
data "google_pubsub_topic" "gcr" {
  project = local.registry_project
  name    = var.gcr_topic
}

# Whoever overwrites the index decides every verdict that follows, so writes to the index bucket are
# recorded: Cloud Storage's DATA_WRITE audit logs (object create, overwrite, delete, metadata patch) of the
# auditor's project. Authoritative for storage.googleapis.com in this project: it replaces any audit
# configuration of that one service made elsewhere.
resource "google_project_iam_audit_config" "storage_writes" {
  project = var.project
  service = "storage.googleapis.com"

  audit_log_config {
    log_type = "DATA_WRITE"
  }

  depends_on = [google_project_service.this]
}

# ---------------------------------------------------------------------------------------------------------
# Index bucket: versioned so that a bad rebuild can be rolled back to an earlier generation.
# ---------------------------------------------------------------------------------------------------------

resource "google_storage_bucket" "index" {
  #checkov:skip=CKV_GCP_62:Writes to the index are recorded by the Cloud Storage DATA_WRITE audit logs of google_project_iam_audit_config.storage_writes, not by legacy usage logs into yet another bucket.
  project                     = var.project
  name                        = local.index_bucket_name
  location                    = local.bucket_location
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      num_newer_versions = var.index_versions_kept
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.this]
}

# Served as plain text, which a browser shows in place (as Markdown it would be downloaded). A new version
# replaces it on the apply that deploys the code it documents.
resource "google_storage_bucket_object" "runbook" {
  for_each = local.runbook_objects

  bucket       = google_storage_bucket.index.name
  name         = "runbook/${each.key}"
  source       = "${local.source_dir}/docs/${each.key}"
  content_type = "text/plain; charset=utf-8"
}

# ---------------------------------------------------------------------------------------------------------
# Function source and build
# ---------------------------------------------------------------------------------------------------------

resource "google_storage_bucket" "source" {
  #checkov:skip=CKV_GCP_62:Holds only the zipped public source of the functions; writes are recorded by the DATA_WRITE audit logs of google_project_iam_audit_config.storage_writes.
  #checkov:skip=CKV_GCP_78:Objects are named after their content's MD5 and never overwritten; any version can be uploaded again from git.
  project                     = var.project
  name                        = local.source_bucket_name
  location                    = local.bucket_location
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets

  depends_on = [google_project_service.this]
}

data "archive_file" "source" {
  type        = "zip"
  source_dir  = local.source_dir
  output_path = "${path.module}/.build/function-source.zip"
  excludes    = var.source_excludes
  # Without it the zip records each file's mode as the operator's umask left it, so the same source gives
  # a different MD5 (hence a new object name and a redeploy) on another machine.
  output_file_mode = "0666"
}

resource "google_storage_bucket_object" "source" {
  # Naming the object after its content makes every source change redeploy both functions.
  name   = "function-source-${data.archive_file.source.output_md5}.zip"
  bucket = google_storage_bucket.source.name
  source = data.archive_file.source.output_path
}

# Function images go to a repository of their own so that the build account never needs write access
# to the registries being audited.
resource "google_artifact_registry_repository" "functions" {
  #checkov:skip=CKV_GCP_84:Holds only the function images built from this repository's public source; Google-managed encryption is enough.
  project       = var.project
  location      = var.region
  repository_id = "${var.name_prefix}-functions"
  format        = "DOCKER"
  description   = "Images built from the registry auditor's Cloud Functions source."

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.this]
}
