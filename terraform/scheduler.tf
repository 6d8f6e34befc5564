# The periodic resync rebuilds the index from the branch head, which covers webhook deliveries that GitHub
# gave up on and pushes that arrived while sync_index was busy or down.
#
# sync_index refuses every request without a valid X-Hub-Signature-256, resyncs included, so the job signs
# its body like GitHub signs a push: HMAC-SHA256 keyed with the webhook secret. The body is static, hence so
# is its signature; Terraform has no HMAC function, so scripts/hmac-sha256.sh computes it (python3 on the
# machine that runs terraform). The secret reaches the script on stdin, never on its command line.
#
# The resync body names no commit (see the validation of var.resync_body), so a replayed request can only
# make sync_index rebuild the head of var.k8s_io_branch, which is what the job does every hour anyway.
data "external" "resync_signature" {
  program = ["sh", "${path.module}/scripts/hmac-sha256.sh"]

  query = {
    secret = google_secret_manager_secret_version.webhook.secret_data
    body   = var.resync_body
  }
}

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
    uri         = google_cloudfunctions2_function.sync.service_config[0].uri
    # No X-GitHub-Event header: that is what makes sync_index treat the request as a resync.
    body = base64encode(var.resync_body)
    headers = {
      "Content-Type" = "application/json"
      # Replayable, but only ever asks for a rebuild of the branch head; kept out of plan output all the same.
      "X-Hub-Signature-256" = sensitive(data.external.resync_signature.result.signature)
    }

    # With sync_public the function is open to allUsers and a token would not be checked. Without it, Cloud
    # Run IAM checks the token and sync_index still checks the signature.
    dynamic "oidc_token" {
      for_each = var.sync_public ? [] : [google_cloudfunctions2_function.sync.service_config[0].uri]
      content {
        service_account_email = google_service_account.scheduler.email
        audience              = oidc_token.value
      }
    }
  }

  depends_on = [
    google_project_service.this,
    google_cloud_run_service_iam_member.sync_scheduler_invoker,
  ]
}

# The daily sweep. Private: Cloud Run IAM lets only the scheduler account's OIDC token in.
resource "google_cloud_scheduler_job" "sweep" {
  project     = var.project
  region      = var.region
  name        = "${var.name_prefix}-sweep"
  description = "Daily reconciliation of the production registries with the registry auditor's digest index."
  schedule    = var.sweep_schedule
  time_zone   = var.resync_time_zone
  # Cloud Scheduler waits at most 30 minutes for an HTTP answer, hence the default sweep_timeout_seconds.
  attempt_deadline = "${min(var.sweep_timeout_seconds, 1800)}s"

  # No retry: a retry after the 30-minute deadline would meet the sweep still running. A day without a
  # summary line pages instead (monitoring.tf).
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
