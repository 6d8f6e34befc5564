# The periodic resync rebuilds the index from the branch head, which covers webhook deliveries that GitHub
# gave up on and pushes that arrived while sync_index was busy or down.
#
# The job authenticates with a Google-signed ID token of the scheduler account, which sync_index checks
# (audience AUDITOR_OIDC_AUDIENCE, the account in AUDITOR_OIDC_INVOKERS); Cloud Run IAM checks it too while
# sync_index is private. Nothing secret is in the job's configuration or in state, and a token lives an hour.
# The body names no commit (see the validation of var.resync_body): a resync always rebuilds the head of
# var.k8s_io_branch.
resource "google_cloud_scheduler_job" "resync" {
  project     = var.project
  region      = var.region
  name        = "${var.name_prefix}-resync"
  description = "Periodic rebuild of the registry auditor's digest index from ${var.k8s_io_repository}@${var.k8s_io_branch}."
  schedule    = var.resync_schedule
  time_zone   = var.resync_time_zone
  # Cloud Scheduler waits at most 30 minutes for an HTTP target.
  attempt_deadline = "${min(var.sync_timeout_seconds, 1800)}s"

  retry_config {
    retry_count          = 2
    min_backoff_duration = "60s"
  }

  http_target {
    http_method = "POST"
    # The URL sync_index is told is its own (AUDITOR_OIDC_AUDIENCE), so the token's audience is exactly it.
    uri = local.function_urls["sync"]
    # No X-GitHub-Event header: that is what makes sync_index treat the request as a resync.
    body = base64encode(var.resync_body)
    headers = {
      "Content-Type" = "application/json"
    }

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = local.function_urls["sync"]
    }
  }

  depends_on = [
    google_project_service.this,
    google_cloud_run_service_iam_member.sync_scheduler_invoker,
    # The target is a URL built from names, so the order that a reference would give is spelled out.
    google_cloudfunctions2_function.sync,
  ]
}

# The sweep, twice a day (see var.sweep_schedule). Private: Cloud Run IAM lets only the scheduler account's
# OIDC token in.
resource "google_cloud_scheduler_job" "sweep" {
  project     = var.project
  region      = var.region
  name        = "${var.name_prefix}-sweep"
  description = "Twice-daily reconciliation of the production registries with the registry auditor's digest index."
  schedule    = var.sweep_schedule
  time_zone   = var.resync_time_zone
  # Cloud Scheduler waits at most 30 minutes for an HTTP answer, hence the default sweep_timeout_seconds.
  attempt_deadline = "${min(var.sweep_timeout_seconds, 1800)}s"

  # No retry: a retry after the 30-minute deadline would meet the sweep still running. The next run is
  # twelve hours away; a run that left no summary pages before it (monitoring.tf).
  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.sweep.service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = google_cloudfunctions2_function.sweep.service_config[0].uri
    }
  }

  depends_on = [
    google_project_service.this,
    google_cloud_run_service_iam_member.sweep_scheduler_invoker,
  ]
}
