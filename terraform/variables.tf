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
  description = "Labels put on every resource that takes labels, and on the alert policies, on top of the module's own (`app`, `instance`, `managed-by`)."
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

variable "parent_wait_seconds" {
  description = "AUDITOR_PARENT_WAIT_SECONDS of audit: how long, from its publish time, a platform child whose list is nowhere yet stays RETRY `parent not yet pushed` before it is decided without that list."
  type        = number
  default     = 600

  validation {
    condition     = var.parent_wait_seconds > 0
    error_message = "parent_wait_seconds must be positive."
  }
}

variable "signers" {
  description = "AUDITOR_SIGNERS of audit and sweep: `IDENTITY=ISSUER` pairs whose keyless signatures count. Default: the image promoter's signing identity."
  type        = list(string)
  default     = ["krel-trust@k8s-releng-prod.iam.gserviceaccount.com=https://accounts.google.com"]

  validation {
    condition     = length(var.signers) > 0 && alltrue([for signer in var.signers : can(regex("^[^=,\\s]+=https://[^=,\\s]+$", signer))])
    error_message = "Each signer is IDENTITY=ISSUER, e.g. krel-trust@k8s-releng-prod.iam.gserviceaccount.com=https://accounts.google.com, without commas or spaces."
  }
}

variable "trusted_root" {
  description = "AUDITOR_TRUSTED_ROOT of audit and sweep: a Sigstore trusted_root.json (gs:// or a path inside the function source) that signatures are checked against. Empty: the public-good root the verification library ships. A gs:// object must be readable by the audit and sweep accounts: put it in the index bucket."
  type        = string
  default     = ""
}

variable "signing_registry" {
  description = "AUDITOR_SIGNING_REGISTRY of sweep: the registry path prefix where every promoted image is signed. Empty turns the sweep's signature check off."
  type        = string
  default     = "us-central1-docker.pkg.dev/k8s-artifacts-prod/images"
}

variable "signed_since" {
  description = "AUDITOR_SIGNED_SINCE of sweep (RFC 3339): digests uploaded before it need no signature. Default: when the promoter's signatures were live (docs/deploy.md says where the date comes from)."
  type        = string
  default     = "2022-06-15T00:00:00Z"

  validation {
    condition     = can(timeadd(var.signed_since, "0s"))
    error_message = "signed_since must be an RFC 3339 time such as 2022-06-15T00:00:00Z."
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

variable "compare_url" {
  description = "AUDITOR_COMPARE_URL of sync_index: URL template with `{base}` and `{head}` answering like GitHub's compare API; the order guard asks it. null: GitHub's API for `k8s_io_repository`."
  type        = string
  default     = null
}

variable "github_token_secret" {
  description = "Secret Manager secret (id, in `project`) holding a GitHub token that sync_index sends to the head and compare endpoints as AUDITOR_GITHUB_TOKEN (GitHub allows 60 anonymous requests an hour per address). Create it and its version with gcloud first (docs/deploy.md); the value never passes through Terraform. null: anonymous."
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
  description = "Upper bound of concurrent index rebuilds (instances of the rebuild function). Kept small: rebuilds are heavy and every one writes the same object."
  type        = number
  default     = 2
}

variable "sync_webhook_max_instances" {
  description = "Upper bound of instances of sync_index that take GitHub's pushes and the resync; they only verify, record and queue, so rebuilds never take their capacity."
  type        = number
  default     = 3
}

variable "sync_public" {
  description = "Grant allUsers run.invoker on sync_index. GitHub cannot present a Google identity, so its webhook only gets through when this is true; the function itself refuses a push without a valid X-Hub-Signature-256 and any other request without an OIDC token of AUDITOR_OIDC_INVOKERS."
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
  description = "Cron schedule (in `resync_time_zone`) of the sweep: more than once a day, because Cloud Monitoring's absence window, which watches its summary line, ends at 23.5 hours (`sweep_absent_seconds`)."
  type        = string
  default     = "23 4,16 * * *"

  validation {
    # The hour field must name several hours (a list, a range, a step or *): a once-a-day schedule leaves
    # a gap that the longest absence window cannot cover, and the liveness alert would open every day.
    condition     = can(regex("^\\S+\\s+\\S*[,*/-]\\S*\\s", var.sweep_schedule))
    error_message = "sweep_schedule must run the sweep more than once a day (e.g. \"23 4,16 * * *\"): the sweep liveness alert's absence window is at most 23.5 hours."
  }
}

variable "sweep_registry_projects" {
  description = "Projects holding the destination registries the sweep lists; its account gets roles/artifactregistry.reader on each. Empty: `registry_project`."
  type        = list(string)
  default     = []
}

variable "grant_registry_reader" {
  description = "Grant the function service accounts roles/artifactregistry.reader on all of `registry_project` (and the sweep's on `sweep_registry_projects`). Off by default: the module makes no IAM change in the production registry project; its owners grant the repositories that are not public (docs/deploy.md)."
  type        = bool
  default     = false
}

# ---------------------------------------------------------------------------------------------------------
# Webhook secret
# ---------------------------------------------------------------------------------------------------------

variable "webhook_secret" {
  description = "GitHub webhook secret written to Secret Manager (write-only: never in state or plan). null: a random one; read it back with `gcloud secrets versions access latest --secret=<webhook_secret_id output>`."
  type        = string
  default     = null
  sensitive   = true
  ephemeral   = true
}

variable "webhook_secret_version" {
  description = "Bump it to write a new webhook secret (`webhook_secret`, or a new random one) to Secret Manager: a write-only value is written only when this changes."
  type        = number
  default     = 1
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
  description = "JSON body the scheduler POSTs, with an OIDC token, to sync_index; it rebuilds the head of `k8s_io_branch`. Must not name a `sha`: a resync carries no commit time, so it must never be able to pin the index to one commit."
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
  description = "Alert when the oldest unacknowledged registry event on the audit subscription is older than this for `backlog_age_duration_seconds`: the auditor is down or falling behind. The two together must pass `pending_grace_seconds` (events are RETRY `index behind` that long by design) and stay below the dead-letter point of `audit_max_delivery_attempts` (about 40 minutes by default), after which the backlog empties."
  type        = number
  default     = 1800
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
    condition     = var.index_refresh_absent_seconds >= 120 && var.index_refresh_absent_seconds <= 84600
    error_message = "Cloud Monitoring accepts absence durations from 120 s up to a maximum of 23.5 hours (84600 s)."
  }
}

variable "sweep_absent_seconds" {
  description = "Alert when no sweep summary has been logged for this long (plus an hour of alignment). The sweep runs twice a day, so the default of 23.5 hours, Cloud Monitoring's longest, pages after one run that left no summary."
  type        = number
  default     = 84600

  validation {
    condition     = var.sweep_absent_seconds >= 120 && var.sweep_absent_seconds <= 84600
    error_message = "Cloud Monitoring accepts absence durations from 120 s up to a maximum of 23.5 hours (84600 s)."
  }
}

variable "runbook_url" {
  description = "Link to the runbook put into the alert documentation. null: docs/runbook.md and docs/oncall.md are uploaded to the index bucket under runbook/ and the alerts link there."
  type        = string
  default     = null
}
