output "index_uri" {
  description = "AUDITOR_INDEX_URI of both functions; pass it to the CLI's --index / --out."
  value       = local.index_uri
}

output "index_bucket" {
  description = "Versioned bucket holding the digest index."
  value       = google_storage_bucket.index.name
}

output "runbook_url" {
  description = "The runbook every alert links to: the copy uploaded with the deployed code, or var.runbook_url."
  value       = local.runbook
}

output "audit_function" {
  description = "Name of the audit function (and of its Cloud Run service)."
  value       = google_cloudfunctions2_function.audit.name
}

output "audit_function_uri" {
  description = "URL the audit subscription pushes to."
  value       = google_cloudfunctions2_function.audit.service_config[0].uri
}

output "sync_function" {
  description = "Name of the sync_index function (and of its Cloud Run service)."
  value       = google_cloudfunctions2_function.sync.name
}

output "rebuild_function" {
  description = "Name of the private sync_index deployment that runs the queued rebuilds (and of its Cloud Run service)."
  value       = google_cloudfunctions2_function.rebuild.name
}

output "webhook_url" {
  description = "Payload URL for the GitHub push webhook of the k8s.io repository: sync_index's cloudfunctions.net URL, also its OIDC audience (AUDITOR_OIDC_AUDIENCE)."
  value       = local.function_urls["sync"]
}

output "webhook_secret_id" {
  description = "Secret Manager secret holding the GitHub webhook secret."
  value       = google_secret_manager_secret.webhook.secret_id
}

output "audit_subscription" {
  description = "Push subscription on the registry's gcr topic that feeds the audit function."
  value       = google_pubsub_subscription.audit.id
}

output "gcr_topic" {
  description = "Audited topic."
  value       = local.gcr_topic_id
}

output "dead_letter_topic" {
  description = "Topic that receives registry events the audit function never decided."
  value       = google_pubsub_topic.dead_letter["audit"].id
}

output "dead_letter_hold_subscription" {
  description = "Pull subscription that keeps dead-lettered events for inspection and replay."
  value       = google_pubsub_subscription.dead_letter_hold["audit"].name
}

output "resync_job" {
  description = "Cloud Scheduler job of the periodic resync; `gcloud scheduler jobs run` it to rebuild now."
  value       = google_cloud_scheduler_job.resync.name
}

output "service_accounts" {
  description = "Service account of each role."
  value = {
    audit      = google_service_account.audit.email
    sync       = google_service_account.sync.email
    push       = google_service_account.push.email
    sync_queue = google_service_account.sync_queue.email
    scheduler  = google_service_account.scheduler.email
    sweep      = google_service_account.sweep.email
    build      = google_service_account.build.email
  }
}

output "project" {
  description = "Project the auditor runs in (functions, subscriptions, logs, alerts)."
  value       = var.project
}

output "region" {
  description = "Region of the functions and scheduler jobs (`--location` / `--region` of gcloud)."
  value       = var.region
}

output "sweep_function" {
  description = "Name of the sweep function (and of its Cloud Run service)."
  value       = google_cloudfunctions2_function.sweep.name
}

output "sweep_job" {
  description = "Cloud Scheduler job of the twice-daily sweep; `gcloud scheduler jobs run` it to sweep now."
  value       = google_cloud_scheduler_job.sweep.name
}

output "sync_queue_topic" {
  description = "AUDITOR_SYNC_QUEUE: topic of the rebuild requests that sync_index queues for itself."
  value       = google_pubsub_topic.sync_queue.id
}

output "audit_replay_topic" {
  description = "Topic that feeds the audit function alone; dead letters are replayed through it."
  value       = google_pubsub_topic.audit_replay.name
}

output "dead_letter_replay_command" {
  description = "Shell command (gcloud and jq) that moves every dead-lettered registry event to the replay topic. Fix the cause first (docs/runbook.md, Dead letters)."
  value       = local.replay_command
}

output "dashboard_url" {
  description = "Cloud Monitoring dashboard of the auditor."
  value       = "https://console.cloud.google.com/monitoring/dashboards/builder/${element(split("/", google_monitoring_dashboard.auditor.id), 3)}?project=${var.project}"
}
