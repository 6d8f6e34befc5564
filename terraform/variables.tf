# ---------------------------------------------------------------------------------------------------------
# Where the auditor runs and what it watches
# ---------------------------------------------------------------------------------------------------------

variable "project" {
  description = "Project that hosts the auditor: functions, index bucket, subscriptions, alerts."
  type        = string
}

variable "region" {
  description = "Region of the functions, the scheduler job and the function image repository."
  type        = string
  default     = "us-central1"
}

variable "registry_project" {
  description = "Project of the production registries whose `gcr` topic is audited. null: same as `project`."
  type        = string
  default     = null
}

variable "gcr_topic" {
  description = "Name of the registry project's Pub/Sub topic that Artifact Registry / GCR publish changes on."
  type        = string
  default     = "gcr"
}

variable "name_prefix" {
  description = "Prefix of every resource name (service accounts, functions, topics, buckets, secret)."
  type        = string
  default     = "registry-auditor"

  validation {
    # Service account ids are limited to 30 characters and the longest suffix is "-scheduler".
    condition     = can(regex("^[a-z][a-z0-9-]{0,18}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 2-20 characters of lower-case letters, digits and dashes."
  }
}

variable "labels" {
  description = "Labels put on every resource that takes labels."
  type        = map(string)
  default     = {}
}

variable "enable_apis" {
  description = "Enable the Google APIs the module needs in `project`. Turn off where APIs are managed elsewhere."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------------------------------------
# Promotion manifests
# ---------------------------------------------------------------------------------------------------------

variable "k8s_io_repository" {
  description = "GitHub repository (owner/name) that holds the promotion manifests and sends the push webhook."
  type        = string
  default     = "kubernetes/k8s.io"
}

variable "k8s_io_branch" {
  description = "AUDITOR_BRANCH of sync_index: the branch of `k8s_io_repository` whose pushes are followed and whose head the periodic resync rebuilds the index from."
  type        = string
  default     = "main"
}

variable "manifests_url" {
  description = "AUDITOR_MANIFESTS for sync_index: tarball URL template with `{sha}`. null: GitHub tarball of `k8s_io_repository`."
  type        = string
  default     = null
}

variable "manifests_subdir" {
  description = "AUDITOR_MANIFESTS_SUBDIR: folder inside the tarball that holds images/ and manifests/."
  type        = string
  default     = "registry.k8s.io"
}

# ---------------------------------------------------------------------------------------------------------
# Index storage
# ---------------------------------------------------------------------------------------------------------

variable "index_bucket_name" {
  description = "Name of the index bucket (globally unique). null: <project>-<name_prefix>-index."
  type        = string
  default     = null
}

variable "index_object" {
  description = "Object name of the digest index inside the index bucket."
  type        = string
  default     = "index.json.gz"
}

variable "bucket_location" {
  description = "Location of the index and source buckets. null: `region`."
  type        = string
  default     = null
}

variable "index_versions_kept" {
  description = "Non-current versions of the index kept for rollback; older ones are deleted."
  type        = number
  default     = 50
}

variable "force_destroy_buckets" {
  description = "Let `terraform destroy` delete buckets that still hold objects."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------------------------------------
# Function source and runtime
# ---------------------------------------------------------------------------------------------------------

variable "source_dir" {
  description = "Directory holding main.py, function/ and requirements.txt. null: the repository root above this module."
  type        = string
  default     = null
}

variable "source_excludes" {
  description = "Paths and globs, relative to `source_dir`, left out of the uploaded function source."
  type        = list(string)
  default = [
    ".git",
    ".github",
    ".ci",
    ".venv",
    ".demo",
    "out",
    "docs",
    "scripts",
    "terraform",
    "tests",
    ".gitignore",
    # Tool configuration only; left out so that the buildpack installs from requirements.txt alone.
    "pyproject.toml",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "**/__pycache__",
    "**/*.pyc",
  ]
}

variable "source_bucket_name" {
  description = "Name of the bucket the zipped function source is uploaded to. null: <project>-<name_prefix>-source."
  type        = string
  default     = null
}

variable "runtime" {
  description = "Cloud Functions runtime of both functions."
  type        = string
  default     = "python312"
}

variable "audit_memory" {
  description = "Memory of an audit instance; it holds the whole digest index."
  type        = string
  default     = "512Mi"
}

variable "audit_cpu" {
  description = "vCPUs of an audit instance. null: the platform's default for `audit_memory`. Must be >= 1 when `audit_concurrency` > 1."
  type        = string
  default     = null
}

variable "audit_concurrency" {
  description = "Requests one audit instance serves at a time."
  type        = number
  default     = 1
}

variable "audit_timeout_seconds" {
  description = "Time one audit may take, registry look-ups included."
  type        = number
  default     = 60
}

variable "audit_min_instances" {
  description = "Warm audit instances; above 0 avoids loading the index on a cold start at the cost of idle instances."
  type        = number
  default     = 0
}

variable "audit_max_instances" {
  description = "Upper bound of audit instances during a promotion burst."
  type        = number
  default     = 50
}

variable "audit_ingress" {
  description = "Ingress of the audit function. Pub/Sub push from a subscription in the same project counts as internal traffic."
  type        = string
  default     = "ALLOW_INTERNAL_ONLY"

  validation {
    condition     = contains(["ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"], var.audit_ingress)
    error_message = "audit_ingress must be ALLOW_ALL, ALLOW_INTERNAL_ONLY or ALLOW_INTERNAL_AND_GCLB."
  }
}

variable "sync_memory" {
  description = "Memory of the sync instance; it unpacks the manifests tarball and builds the index."
  type        = string
  default     = "1Gi"
}

variable "sync_timeout_seconds" {
  description = "Time one index rebuild may take (at most 3600 for an HTTP function)."
  type        = number
  default     = 540
}

variable "sync_max_instances" {
  description = "Upper bound of concurrent index rebuilds. Kept small: rebuilds are heavy and every one writes the same object."
  type        = number
  default     = 2
}

variable "sync_public" {
  description = "Grant allUsers run.invoker on sync_index. GitHub cannot present a Google identity, so its webhook only gets through when this is true; the function itself refuses requests without a valid X-Hub-Signature-256."
  type        = bool
  default     = true
}

variable "grant_registry_reader" {
  description = "Grant both function service accounts roles/artifactregistry.reader on `registry_project` (needs IAM rights there)."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------------------------------------
# Webhook secret
# ---------------------------------------------------------------------------------------------------------

variable "webhook_secret" {
  description = "GitHub webhook secret stored in Secret Manager. null: a random one is generated; read it back with `gcloud secrets versions access latest --secret=<webhook_secret_id output>`."
  type        = string
  default     = null
  sensitive   = true
}

# ---------------------------------------------------------------------------------------------------------
# Delivery of registry events
# ---------------------------------------------------------------------------------------------------------

variable "audit_ack_deadline_seconds" {
  description = "How long Pub/Sub waits for the audit function to answer a push (10-600); keep it above `audit_timeout_seconds`."
  type        = number
  default     = 120
}

variable "audit_min_backoff" {
  description = "First redelivery delay after a RETRY verdict or a failed push."
  type        = string
  default     = "10s"
}

variable "audit_max_backoff" {
  description = "Longest redelivery delay (at most 600s)."
  type        = string
  default     = "600s"
}

variable "audit_max_delivery_attempts" {
  description = "Delivery attempts before a message is moved to the dead-letter topic (5-100); with the default backoff 10 attempts span about 40 minutes."
  type        = number
  default     = 10

  validation {
    condition     = var.audit_max_delivery_attempts >= 5 && var.audit_max_delivery_attempts <= 100
    error_message = "Pub/Sub accepts 5 to 100 delivery attempts."
  }
}

variable "audit_message_retention" {
  description = "How long an unacknowledged registry event stays on the audit subscription."
  type        = string
  default     = "604800s"
}

variable "dead_letter_retention" {
  description = "How long dead-lettered messages stay available for replay (at most 31 days)."
  type        = string
  default     = "1209600s"
}

# ---------------------------------------------------------------------------------------------------------
# Periodic resync
# ---------------------------------------------------------------------------------------------------------

variable "resync_schedule" {
  description = "Cron schedule of the index resync that covers missed or failed webhook deliveries."
  type        = string
  default     = "7 * * * *"
}

variable "resync_time_zone" {
  description = "Time zone of `resync_schedule`."
  type        = string
  default     = "Etc/UTC"
}

variable "resync_body" {
  description = "JSON body the scheduler POSTs, HMAC-signed, to sync_index; it rebuilds the head of `k8s_io_branch`. Must not name a `sha`: the signature is static, and a replayable request must not be able to pin the index to one commit."
  type        = string
  default     = "{\"resync\":true}"

  validation {
    condition     = can(jsondecode(var.resync_body)) && !can(jsondecode(var.resync_body).sha)
    error_message = "resync_body must be JSON that names no \"sha\"."
  }
}

# ---------------------------------------------------------------------------------------------------------
# Alerting
# ---------------------------------------------------------------------------------------------------------

variable "alert_channels" {
  description = "Monitoring notification channel ids (projects/<p>/notificationChannels/<id>) for both alert policies."
  type        = list(string)
  default     = []
}

variable "alert_auto_close" {
  description = "How long an open incident stays open after its condition stops firing."
  type        = string
  default     = "86400s"
}

variable "runbook_url" {
  description = "Link to the runbook put into the alert documentation. null: the text names docs/runbook.md."
  type        = string
  default     = null
}
