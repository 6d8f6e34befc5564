# ---------------------------------------------------------------------------------------------------------
# Alarm: a REJECTED or MALFORMED verdict means something changed in a production registry that the
# promotion manifests do not explain.
# ---------------------------------------------------------------------------------------------------------

resource "google_logging_metric" "audit_alarms" {
  project     = var.project
  name        = "${var.name_prefix}-audit-alarms"
  description = "REJECTED and MALFORMED verdict lines of the registry audit function."
  filter      = <<-EOT
    resource.type="cloud_run_revision"
    resource.labels.service_name="${google_cloudfunctions2_function.audit.name}"
    jsonPayload.verdict=("REJECTED" OR "MALFORMED")
  EOT

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    labels {
      key         = "verdict"
      value_type  = "STRING"
      description = "REJECTED or MALFORMED"
    }
    labels {
      key         = "reason"
      value_type  = "STRING"
      description = "Reason word of a REJECTED verdict"
    }
  }

  label_extractors = {
    verdict = "EXTRACT(jsonPayload.verdict)"
    # MALFORMED carries free text as reason; only the fixed reason words become label values.
    reason = "REGEXP_EXTRACT(jsonPayload.reason, \"^([a-z_]+)$\")"
  }
}

resource "google_monitoring_alert_policy" "audit_alarms" {
  project               = var.project
  display_name          = "${var.name_prefix}: unexplained change in a production registry"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = var.alert_channels

  conditions {
    display_name = "REJECTED or MALFORMED verdict"

    condition_threshold {
      filter          = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.audit_alarms.name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.verdict", "metric.label.reason"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = var.alert_auto_close
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      The registry auditor logged a REJECTED or MALFORMED verdict: an image change in a production registry
      that the promotion manifests in ${var.k8s_io_repository} do not explain.

      Find the verdict lines in Logs Explorer:
      `resource.labels.service_name="${google_cloudfunctions2_function.audit.name}" jsonPayload.verdict=("REJECTED" OR "MALFORMED")`

      What each reason means and what to do: ${local.runbook}
    EOT
  }
}

# ---------------------------------------------------------------------------------------------------------
# Alarm: an event was given up on after every redelivery and waits on the dead-letter hold subscription.
# Until it is replayed, that registry change has not been audited.
# ---------------------------------------------------------------------------------------------------------

resource "google_monitoring_alert_policy" "dead_letters" {
  project               = var.project
  display_name          = "${var.name_prefix}: registry events dead-lettered"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.alert_channels

  conditions {
    display_name = "Messages waiting on ${google_pubsub_subscription.dead_letter_hold.name}"

    condition_threshold {
      filter          = "resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${google_pubsub_subscription.dead_letter_hold.name}\" AND metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = var.alert_auto_close
  }

  documentation {
    mime_type = "text/markdown"
    content   = <<-EOT
      Registry events were redelivered ${var.audit_max_delivery_attempts} times without a verdict (RETRY: a
      registry or storage fault) and were moved to the dead-letter topic. The changes they describe are not
      audited until they are replayed from subscription `${google_pubsub_subscription.dead_letter_hold.name}`.

      How to inspect and replay them: ${local.runbook}
    EOT
  }
}
