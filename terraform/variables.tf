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
    # scripts/setup's checkov venv.
    ".tools",
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

variable "audit_refresh_seconds" {
  description = "AUDITOR_REFRESH_SECONDS: an audit instance never decides from an index whose generation it has not checked for this long."
  type        = number
  default     = 60
}

variable "pending_grace_seconds" {
  description = "AUDITOR_PENDING_GRACE_SECONDS: how long a merged k8s.io commit not yet in the published index turns would-be REJECTED verdicts into RETRY `index behind`; after it, the stale sync itself alerts."
  type        = number
  default     = 1800
}

variable "audit_deadline_seconds" {
  description = "AUDITOR_DEADLINE_SECONDS: every decision writes its verdict line within this time (RETRY if it could not finish). Must stay below `audit_timeout_seconds`."
  type        = number
  default     = 50

  validation {
    condition     = var.audit_deadline_seconds > 0
    error_message = "audit_deadline_seconds must be positive."
  }
}

variable "frozen_prefixes" {
  description = "AUDITOR_FROZEN_PREFIXES of audit and sweep: registry path prefixes that must never change; any change under one is REJECTED `frozen`. Default: the frozen legacy GCR registries of registry.k8s.io."
  type        = list(string)
  default = [
    "gcr.io/k8s-artifacts-prod",
    "asia.gcr.io/k8s-artifacts-prod",
    "eu.gcr.io/k8s-artifacts-prod",
    "us.gcr.io/k8s-artifacts-prod",
  ]

  validation {
    condition     = alltrue([for prefix in var.frozen_prefixes : !strcontains(prefix, ",") && trimspace(prefix) == prefix && prefix != ""])
    error_message = "Each frozen prefix is a registry path such as gcr.io/k8s-artifacts-prod, without commas or spaces."
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

variable "head_url" {
  description = "AUDITOR_HEAD_URL of sync_index: URL template with `{branch}` answering like GitHub's commits API; a resync pins the branch head through it. null: GitHub's API for `k8s_io_repository`."
  type        = string
  default     = null
}

variable "sync_queue_min_backoff" {
  description = "First redelivery delay of a rebuild request that failed (sync_index answered 5xx)."
  type        = string
  default     = "30s"
}

variable "sync_queue_max_delivery_attempts" {
  description = "Delivery attempts of a rebuild request before it is dead-lettered (5-100). The hourly resync rebuilds the branch head anyway."
  type        = number
  default     = 5

  validation {
    condition     = var.sync_queue_max_delivery_attempts >= 5 && var.sync_queue_max_delivery_attempts <= 100
    error_message = "Pub/Sub accepts 5 to 100 delivery attempts."
  }
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

variable "sweep_memory" {
  description = "Memory of the sweep instance; it holds the index and the listing of every destination."
  type        = string
  default     = "2Gi"
}

variable "sweep_timeout_seconds" {
  description = "Time one sweep may take; what it did not reach is named in its summary. Cloud Scheduler hangs up after 1800 s, so above that a sweep runs on after its caller has gone (at most 3600 for an HTTP function)."
  type        = number
  default     = 1800

  validation {
    condition     = var.sweep_timeout_seconds >= 60 && var.sweep_timeout_seconds <= 3600
    error_message = "sweep_timeout_seconds must be between 60 and 3600 (the limit of an HTTP Cloud Function)."
  }
}

variable "sweep_schedule" {
  description = "Cron schedule (in `resync_time_zone`) of the daily sweep."
  type        = string
  default     = "23 4 * * *"
}

variable "sweep_registry_projects" {
  description = "Projects holding the destination registries the sweep lists; its account gets roles/artifactregistry.reader on each. Empty: `registry_project`."
  type        = list(string)
  default     = []
}

variable "grant_registry_reader" {
  description = "Grant the function service accounts roles/artifactregistry.reader on `registry_project` (and the sweep's on `sweep_registry_projects`); needs IAM rights there."
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
  description = "Monitoring notification channel ids (projects/<p>/notificationChannels/<id>) every alert policy notifies. Required: an alert that notifies nobody is how the previous auditor went unnoticed. `[]` deploys the policies without notifications on purpose (a test project): incidents then only show in the console."
  type        = list(string)
  default     = null

  validation {
    condition     = var.alert_channels != null
    error_message = "Set alert_channels to the notification channels on-call watches (gcloud beta monitoring channels list), or to [] to deploy alerts that notify nobody."
  }

  validation {
    condition     = alltrue([for channel in(var.alert_channels == null ? [] : var.alert_channels) : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", channel))])
    error_message = "Each alert channel must be a full id: projects/<project>/notificationChannels/<id>."
  }
}

variable "alert_auto_close" {
  description = "How long an open incident stays open after its condition stops firing."
  type        = string
  default     = "86400s"
}

variable "backlog_age_threshold_seconds" {
  description = "Alert when the oldest unacknowledged registry event on the audit subscription is older than this: the auditor is down or falling behind. Keep it below the time `audit_max_delivery_attempts` take (about 40 minutes by default), after which events are dead-lettered and the backlog empties."
  type        = number
  default     = 1200
}

variable "backlog_age_duration_seconds" {
  description = "How long the backlog age must stay above its threshold before the alert opens."
  type        = number
  default     = 300
}

variable "push_failure_rate_threshold" {
  description = "Alert when pushes of a subscription are answered other than 2xx more often than this many per second, sustained. RETRY verdicts are such answers by design, so a short burst is normal."
  type        = number
  default     = 0.05
}

variable "push_failure_duration_seconds" {
  description = "How long the failed-push rate must stay above its threshold before the alert opens."
  type        = number
  default     = 900
}

variable "index_refresh_absent_seconds" {
  description = "Alert when no sync or resync has succeeded (published or unchanged) for this long; a few periods of `resync_schedule`."
  type        = number
  default     = 14400

  validation {
    condition     = var.index_refresh_absent_seconds >= 120 && var.index_refresh_absent_seconds <= 86400
    error_message = "Cloud Monitoring accepts absence durations from 120 s to one day."
  }
}

variable "sweep_absent_seconds" {
  description = "Alert when no sweep summary has been logged for this long (plus an hour of alignment); the sweep runs daily."
  type        = number
  default     = 86400

  validation {
    condition     = var.sweep_absent_seconds >= 120 && var.sweep_absent_seconds <= 86400
    error_message = "Cloud Monitoring accepts absence durations from 120 s to one day."
  }
}

variable "runbook_url" {
  description = "Link to the runbook put into the alert documentation. null: the text names docs/runbook.md."
  type        = string
  default     = null
}
