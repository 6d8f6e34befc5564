# Registry events reach the audit function through a push subscription owned by this module rather than an
# Eventarc trigger: only a subscription of our own can carry a dead-letter policy. A RETRY verdict makes the
# function raise, the push gets a 5xx, and Pub/Sub redelivers with exponential backoff; after
# `audit_max_delivery_attempts` the message moves to the dead-letter topic, where the hold subscription keeps
# it for replay (docs/runbook.md).

resource "google_pubsub_topic" "dead_letter" {
  project = var.project
  name    = "${var.name_prefix}-audit-dead-letter"

  depends_on = [google_project_service.this]
}

# A topic without a subscription drops what is published to it; this one keeps dead letters until an
# operator has looked at them. Acknowledged messages are retained too, so a replay can seek back.
resource "google_pubsub_subscription" "dead_letter_hold" {
  project                    = var.project
  name                       = "${var.name_prefix}-audit-dead-letter-hold"
  topic                      = google_pubsub_topic.dead_letter.id
  ack_deadline_seconds       = 60
  message_retention_duration = var.dead_letter_retention
  retain_acked_messages      = true

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "audit" {
  project = var.project
  name    = "${var.name_prefix}-audit"
  # The topic may live in the registry project; the subscription lives here, next to the function.
  topic                      = local.gcr_topic_id
  ack_deadline_seconds       = var.audit_ack_deadline_seconds
  message_retention_duration = var.audit_message_retention

  push_config {
    # The topic in the path lets the Functions Framework name it as the CloudEvent source, as Eventarc does.
    push_endpoint = "${google_cloudfunctions2_function.audit.service_config[0].uri}/${local.gcr_topic_id}"

    oidc_token {
      service_account_email = google_service_account.push.email
      # Cloud Run accepts the service URL as audience, not the URL with a path.
      audience = google_cloudfunctions2_function.audit.service_config[0].uri
    }
  }

  retry_policy {
    minimum_backoff = var.audit_min_backoff
    maximum_backoff = var.audit_max_backoff
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.audit_max_delivery_attempts
  }

  # An audit subscription must never expire for lack of activity, even if the registry is quiet for weeks.
  expiration_policy {
    ttl = ""
  }

  lifecycle {
    precondition {
      condition     = var.audit_ack_deadline_seconds > var.audit_timeout_seconds
      error_message = "audit_ack_deadline_seconds must exceed audit_timeout_seconds, or Pub/Sub redelivers events still being audited."
    }
  }

  depends_on = [
    # Dead letters published before the hold subscription exists would be lost.
    google_pubsub_subscription.dead_letter_hold,
    google_pubsub_topic_iam_member.dead_letter_publisher,
    google_cloud_run_service_iam_member.audit_push_invoker,
  ]
}

# Dead lettering needs the Pub/Sub service agent to publish to the dead-letter topic and to acknowledge the
# forwarded message on the source subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  project = var.project
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "audit_dead_letter_subscriber" {
  project      = var.project
  subscription = google_pubsub_subscription.audit.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}
