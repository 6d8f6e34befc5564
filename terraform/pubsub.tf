# Registry events reach the audit function through a push subscription owned by this module rather than an
# Eventarc trigger: only a subscription of our own can carry a dead-letter policy. A RETRY verdict makes the
# function raise, the push gets a 5xx, and Pub/Sub redelivers with exponential backoff; after
# `audit_max_delivery_attempts` the message moves to the dead-letter topic, where the hold subscription keeps
# it for replay (docs/runbook.md).
#
# The sync queue works the same way: sync_index answers GitHub's webhook with 202 after publishing a
# rebuild request, and this module's push subscription delivers the request to the rebuild function (the
# same code, private) with an OIDC token of its own account; it rebuilds inside that push (up to the 600 s
# ack deadline) and answers 5xx to have it retried.

locals {
  # One dead-letter topic (and hold subscription) for registry events, one for rebuild requests.
  dead_letter_queues = ["audit", "sync"]
  # Every subscription that dead-letters: the Pub/Sub service agent must be able to acknowledge on each.
  dead_lettering_subscriptions = {
    audit        = google_pubsub_subscription.audit.name
    audit_replay = google_pubsub_subscription.audit_replay.name
    sync         = google_pubsub_subscription.sync_queue.name
  }
}

resource "google_pubsub_topic" "dead_letter" {
  #checkov:skip=CKV_GCP_83:Holds copies of registry events and rebuild requests, which name public images and commits; Google-managed encryption is enough.
  for_each = toset(local.dead_letter_queues)

  project = var.project
  name    = "${var.name_prefix}-${each.key}-dead-letter"

  depends_on = [google_project_service.this]
}

# A topic without a subscription drops what is published to it; this one keeps dead letters until an
# operator has looked at them. Acknowledged messages are retained too, so a replay can seek back.
resource "google_pubsub_subscription" "dead_letter_hold" {
  for_each = google_pubsub_topic.dead_letter

  project                    = var.project
  name                       = "${var.name_prefix}-${each.key}-dead-letter-hold"
  topic                      = each.value.id
  ack_deadline_seconds       = 60
  message_retention_duration = var.dead_letter_retention
  retain_acked_messages      = true

  expiration_policy {
    ttl = ""
  }
}

# Dead lettering needs the Pub/Sub service agent to publish to the dead-letter topic and to acknowledge the
# forwarded message on the source subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  for_each = google_pubsub_topic.dead_letter

  project = var.project
  topic   = each.value.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each = local.dead_lettering_subscriptions

  project      = var.project
  subscription = each.value
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

# Before the sync queue existed these were single resources; keep deployed ones instead of replacing them.
moved {
  from = google_pubsub_topic.dead_letter
  to   = google_pubsub_topic.dead_letter["audit"]
}

moved {
  from = google_pubsub_subscription.dead_letter_hold
  to   = google_pubsub_subscription.dead_letter_hold["audit"]
}

moved {
  from = google_pubsub_topic_iam_member.dead_letter_publisher
  to   = google_pubsub_topic_iam_member.dead_letter_publisher["audit"]
}

moved {
  from = google_pubsub_subscription_iam_member.audit_dead_letter_subscriber
  to   = google_pubsub_subscription_iam_member.dead_letter_subscriber["audit"]
}

# ---------------------------------------------------------------------------------------------------------
# Registry events: the registry's gcr topic, and a replay topic that feeds the auditor alone.
# ---------------------------------------------------------------------------------------------------------

resource "google_pubsub_subscription" "audit" {
  project = var.project
  name    = "${var.name_prefix}-audit"
  # The topic may live in the registry project; the subscription lives here, next to the function.
  topic                      = local.gcr_topic_id
  ack_deadline_seconds       = var.audit_ack_deadline_seconds
  message_retention_duration = var.audit_message_retention
  # Acknowledged events stay for the retention too, so that after a fix an operator can seek the
  # subscription back to a time and have every event since audited again (docs/runbook.md).
  retain_acked_messages = true

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
    dead_letter_topic     = google_pubsub_topic.dead_letter["audit"].id
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
    # Without it the first pushes carry no token and are refused with 403 until the grant lands.
    google_service_account_iam_member.pubsub_push_token_creator,
  ]
}

# Dead letters are replayed here rather than on the registry's gcr topic, whose other subscribers would
# receive them again. Its one subscription pushes to the audit function exactly like the audit subscription.
resource "google_pubsub_topic" "audit_replay" {
  #checkov:skip=CKV_GCP_83:Carries copies of registry events, which name public images; Google-managed encryption is enough.
  project = var.project
  name    = "${var.name_prefix}-audit-replay"

  depends_on = [google_project_service.this]
}

resource "google_pubsub_subscription" "audit_replay" {
  project                    = var.project
  name                       = "${var.name_prefix}-audit-replay"
  topic                      = google_pubsub_topic.audit_replay.id
  ack_deadline_seconds       = var.audit_ack_deadline_seconds
  message_retention_duration = var.audit_message_retention
  # Acknowledged events stay for the retention too, so that after a fix an operator can seek the
  # subscription back to a time and have every event since audited again (docs/runbook.md).
  retain_acked_messages = true

  push_config {
    push_endpoint = "${google_cloudfunctions2_function.audit.service_config[0].uri}/${google_pubsub_topic.audit_replay.id}"

    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = google_cloudfunctions2_function.audit.service_config[0].uri
    }
  }

  retry_policy {
    minimum_backoff = var.audit_min_backoff
    maximum_backoff = var.audit_max_backoff
  }

  # A replayed event that still finds no verdict goes back to the same hold subscription.
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter["audit"].id
    max_delivery_attempts = var.audit_max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_pubsub_subscription.dead_letter_hold,
    google_pubsub_topic_iam_member.dead_letter_publisher,
    google_cloud_run_service_iam_member.audit_push_invoker,
    google_service_account_iam_member.pubsub_push_token_creator,
  ]
}

# ---------------------------------------------------------------------------------------------------------
# Sync queue: rebuild requests from sync_index to the rebuild function.
# ---------------------------------------------------------------------------------------------------------

resource "google_pubsub_topic" "sync_queue" {
  #checkov:skip=CKV_GCP_83:Carries public k8s.io commit ids and their times only; Google-managed encryption is enough.
  project = var.project
  name    = "${var.name_prefix}-sync-queue"

  depends_on = [google_project_service.this]
}

resource "google_pubsub_subscription" "sync_queue" {
  project = var.project
  name    = "${var.name_prefix}-sync-queue"
  topic   = google_pubsub_topic.sync_queue.id
  # A rebuild runs inside the push; Pub/Sub's longest ack deadline is what it gets before a redelivery.
  ack_deadline_seconds = 600
  # The hourly resync rebuilds the branch head anyway; a day-old rebuild request is worth nothing.
  message_retention_duration = "86400s"

  push_config {
    # The URL the rebuild function is told is its own (AUDITOR_OIDC_AUDIENCE): the token's audience is it.
    push_endpoint = local.function_urls["rebuild"]

    # Checked by Cloud Run IAM (the rebuild function is private) and by the function.
    oidc_token {
      service_account_email = google_service_account.sync_queue.email
      audience              = local.function_urls["rebuild"]
    }
  }

  retry_policy {
    minimum_backoff = var.sync_queue_min_backoff
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter["sync"].id
    max_delivery_attempts = var.sync_queue_max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  lifecycle {
    precondition {
      condition     = var.sync_timeout_seconds <= 600
      error_message = "sync_timeout_seconds must be at most 600: a queued rebuild runs inside a Pub/Sub push, whose ack deadline is at most 600 s."
    }
  }

  depends_on = [
    google_pubsub_subscription.dead_letter_hold,
    google_pubsub_topic_iam_member.dead_letter_publisher,
    google_cloud_run_service_iam_member.rebuild_queue_invoker,
    google_service_account_iam_member.pubsub_push_token_creator,
    # The endpoint is a URL built from names, so the order that a reference would give is spelled out.
    google_cloudfunctions2_function.rebuild,
  ]
}
