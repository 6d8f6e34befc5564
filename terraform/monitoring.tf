# Alerts of two kinds. Alarms: a line the code writes when something is wrong (a REJECTED verdict, a stale
# sync, a sweep finding). Liveness: the auditor must not go quiet unnoticed (backlog age, failing pushes,
# dead letters, no successful sync, no sweep). Absence conditions watch only signals that are periodic by
# construction (the hourly resync, the twice-daily sweep), never registry traffic, which is bursty.
#
# The log-based metrics name the functions by plan-time names (local.function_names), not by the function
# resources: they are created at the start of the first apply, and the alert policies, which wait for the
# function builds, are created some ten minutes later. A policy created right after its metric fails with
# "Cannot find metric(s)" for up to ten minutes (terraform-provider-google issue #11102).
#
# Each log-based metric matches lines by their jsonPayload keys; tests/test_terraform.py emits those lines
# with the code's own emitters and evaluates every filter here against them. Each policy names its section of
# docs/runbook.md.

# ---------------------------------------------------------------------------------------------------------
# Log-based metrics: one per kind of structured line, each label extracted from the line.
# ---------------------------------------------------------------------------------------------------------

locals {
  log_metrics = {
    # A REJECTED or MALFORMED verdict of the audit function: something changed in a production registry
    # that the promotion manifests do not explain.
    audit_alarms = {
      description = "REJECTED and MALFORMED verdict lines of the registry audit function."
      filter      = <<-EOT
        resource.type="cloud_run_revision"
        resource.labels.service_name="${local.function_names["audit"]}"
        jsonPayload.verdict=("REJECTED" OR "MALFORMED")
      EOT
      labels = {
        verdict = { extractor = "EXTRACT(jsonPayload.verdict)", description = "REJECTED or MALFORMED" }
        # MALFORMED carries free text as reason; only the fixed reason words become label values.
        reason = { extractor = "REGEXP_EXTRACT(jsonPayload.reason, \"^([a-z_]+)$\")", description = "Reason word of a REJECTED verdict" }
      }
    }

    # Every verdict line, of events and of the sweep: the dashboard's verdicts per reason, RETRY rate and
    # sweep findings per region.
    verdicts = {
      description = "Verdict lines of the audit and sweep functions, by verdict, reason, source and registry host."
      filter      = <<-EOT
        resource.type="cloud_run_revision"
        resource.labels.service_name=("${local.function_names["audit"]}" OR "${local.function_names["sweep"]}")
        jsonPayload.verdict:*
      EOT
      labels = {
        verdict = { extractor = "EXTRACT(jsonPayload.verdict)", description = "VERIFIED, REJECTED, IGNORED, MALFORMED, RETRY or MISSING" }
        reason  = { extractor = "REGEXP_EXTRACT(jsonPayload.reason, \"^([a-z_ ]{1,40})$\")", description = "Reason of the verdict (short texts only: MALFORMED details are left out)" }
        source  = { extractor = "EXTRACT(jsonPayload.source)", description = "event or sweep" }
        host    = { extractor = "REGEXP_EXTRACT(jsonPayload.path, \"^([^/]+)/\")", description = "Registry host of the path, i.e. the region" }
      }
    }

    # Each successful sync or resync: "published" (a new generation) and "unchanged" (nothing to publish)
    # both prove that the index follows the branch. Queued rebuilds log them from the rebuild function.
    index_refreshed = {
      description = "Successful index syncs and resyncs (published or unchanged) of the sync_index functions."
      filter      = <<-EOT
        resource.type="cloud_run_revision"
        resource.labels.service_name=("${local.function_names["sync"]}" OR "${local.function_names["rebuild"]}")
        jsonPayload.sync=("published" OR "unchanged")
      EOT
      labels = {
        outcome = { extractor = "EXTRACT(jsonPayload.sync)", description = "published or unchanged" }
      }
    }

    # A merged k8s.io commit that never made it into the index within the grace, or a published index the
    # functions cannot read (written by a newer deployment, or damaged).
    freshness_errors = {
      description = "Stale sync and unreadable index lines of the audit and sync_index functions."
      filter      = <<-EOT
        resource.type="cloud_run_revision"
        resource.labels.service_name=("${local.function_names["audit"]}" OR "${local.function_names["sync"]}" OR "${local.function_names["rebuild"]}")
        jsonPayload.freshness=("stale_sync" OR "index_unreadable")
      EOT
      labels = {
        freshness = { extractor = "EXTRACT(jsonPayload.freshness)", description = "stale_sync or index_unreadable" }
      }
    }

    # The sweep's last line, one per run.
    sweep_summaries = {
      description = "Summary lines of the sweep function, one per run, by completeness."
      filter      = <<-EOT
        resource.type="cloud_run_revision"
        resource.labels.service_name="${local.function_names["sweep"]}"
        jsonPayload.sweep.complete:*
      EOT
      labels = {
        complete = { extractor = "EXTRACT(jsonPayload.sweep.complete)", description = "true when every destination was swept" }
      }
    }

    # Content in a destination registry that no rule explains, found by listing: the pushes whose events
    # were lost or never audited.
    sweep_rejections = {
      description = "REJECTED findings of the sweep function."
      filter      = <<-EOT
        resource.type="cloud_run_revision"
        resource.labels.service_name="${local.function_names["sweep"]}"
        jsonPayload.source="sweep"
        jsonPayload.verdict="REJECTED"
      EOT
      labels = {
        reason = { extractor = "EXTRACT(jsonPayload.reason)", description = "Reason word of the REJECTED finding" }
        host   = { extractor = "REGEXP_EXTRACT(jsonPayload.path, \"^([^/]+)/\")", description = "Registry host (region) holding the content" }
      }
    }

    # A promoted digest, child or tag absent from one of its destinations: a promotion stopped half-way.
    missing = {
      description = "MISSING findings of the sweep function."
      filter      = <<-EOT
        resource.type="cloud_run_revision"
        resource.labels.service_name="${local.function_names["sweep"]}"
        jsonPayload.source="sweep"
        jsonPayload.verdict="MISSING"
      EOT
      labels = {
        reason = { extractor = "EXTRACT(jsonPayload.reason)", description = "absent or tag_absent" }
        host   = { extractor = "REGEXP_EXTRACT(jsonPayload.path, \"^([^/]+)/\")", description = "Registry host (region) the content is missing from" }
      }
    }
  }
}

resource "google_logging_metric" "lines" {
  for_each = local.log_metrics

  project     = var.project
  name        = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  description = each.value.description
  filter      = each.value.filter

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"

    dynamic "labels" {
      for_each = each.value.labels
      content {
        key         = labels.key
        value_type  = "STRING"
        description = labels.value.description
      }
    }
  }

  label_extractors = { for key, label in each.value.labels : key => label.extractor }
}

moved {
  from = google_logging_metric.audit_alarms
  to   = google_logging_metric.lines["audit_alarms"]
}

# On the first apply the function builds are the metrics' wait (see the top of this file). This covers a
# later apply that adds a metric while the functions stay as they are.
resource "time_sleep" "log_metrics" {
  create_duration = "60s"

  triggers = {
    metrics = join(",", [for metric in google_logging_metric.lines : metric.id])
  }
}

# ---------------------------------------------------------------------------------------------------------
# Alarms: any counted line pages, each policy on the log-based metric of the same name.
# ---------------------------------------------------------------------------------------------------------

locals {
  log_alarms = {
    audit_alarms = {
      display_name     = "unexplained change in a production registry"
      severity         = "CRITICAL"
      condition        = "REJECTED or MALFORMED verdict"
      alignment_period = "60s"
      group_by         = ["metric.label.verdict", "metric.label.reason"]
      documentation    = <<-EOT
        The registry auditor logged a REJECTED or MALFORMED verdict: an image change in a production registry
        that the promotion manifests in ${var.k8s_io_repository} do not explain.

        Find the verdict lines in Logs Explorer:
        `resource.labels.service_name="${local.function_names["audit"]}" jsonPayload.verdict=("REJECTED" OR "MALFORMED")`

        What each reason means and what to do: ${local.runbook}, section "Verdicts".
      EOT
    }

    freshness_errors = {
      display_name     = "index behind a merged commit, or unreadable"
      severity         = "ERROR"
      condition        = "stale_sync or index_unreadable line"
      alignment_period = "300s"
      group_by         = ["metric.label.freshness"]
      documentation    = <<-EOT
        `stale_sync`: a k8s.io commit merged more than ${var.pending_grace_seconds} s ago is still not in the
        published index, so promotions it declares are now judged against an older index (and may be REJECTED).
        `index_unreadable`: the functions cannot read the published index.

        `resource.labels.service_name=("${local.function_names["audit"]}" OR "${local.function_names["sync"]}" OR "${local.function_names["rebuild"]}") jsonPayload.freshness:*`

        What to do: ${local.runbook}, section "Index behind or unreadable".
      EOT
    }

    sweep_rejections = {
      display_name     = "sweep found unexplained content in a production registry"
      severity         = "CRITICAL"
      condition        = "REJECTED finding of the sweep"
      alignment_period = "300s"
      group_by         = ["metric.label.reason", "metric.label.host"]
      documentation    = <<-EOT
        The sweep found content in a destination registry that the promotion manifests do not explain
        (its event was lost, dead-lettered or never audited).

        `resource.labels.service_name="${local.function_names["sweep"]}" jsonPayload.verdict="REJECTED"`

        What to do: ${local.runbook}, sections "Verdicts" and "Sweep findings".
      EOT
    }

    missing = {
      display_name     = "promoted image missing from a region"
      severity         = "ERROR"
      condition        = "MISSING finding of the sweep"
      alignment_period = "300s"
      group_by         = ["metric.label.reason", "metric.label.host"]
      documentation    = <<-EOT
        The sweep found a promoted digest, platform child or tag absent from one of its destination
        registries: a promotion stopped part-way through the regions.

        `resource.labels.service_name="${local.function_names["sweep"]}" jsonPayload.verdict="MISSING"`

        What to do: ${local.runbook}, section "MISSING".
      EOT
    }
  }
}

resource "google_monitoring_alert_policy" "log_alarms" {
  for_each = local.log_alarms

  project               = var.project
  display_name          = "${var.name_prefix}: ${each.value.display_name}"
  combiner              = "OR"
  severity              = each.value.severity
  notification_channels = var.alert_channels
  user_labels           = local.labels

  conditions {
    display_name = each.value.condition

    condition_threshold {
      filter          = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.lines[each.key].name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = each.value.alignment_period
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = each.value.group_by
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
    content   = each.value.documentation
  }

  # The builds are the metrics' propagation wait on the first apply (see the top of this file).
  depends_on = [
    time_sleep.log_metrics,
    google_cloudfunctions2_function.audit,
    google_cloudfunctions2_function.sync,
    google_cloudfunctions2_function.rebuild,
    google_cloudfunctions2_function.sweep,
  ]
}

moved {
  from = google_monitoring_alert_policy.audit_alarms
  to   = google_monitoring_alert_policy.log_alarms["audit_alarms"]
}

# ---------------------------------------------------------------------------------------------------------
# Liveness
# ---------------------------------------------------------------------------------------------------------

# Dead letters: an event given up on after every redelivery, waiting on a hold subscription. Until it is
# replayed, that registry change has not been audited (or that rebuild request has not been run).
resource "google_monitoring_alert_policy" "dead_letters" {
  for_each = google_pubsub_subscription.dead_letter_hold

  project               = var.project
  display_name          = "${var.name_prefix}: ${each.key == "audit" ? "registry events" : "index rebuild requests"} dead-lettered"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.alert_channels
  user_labels           = local.labels

  conditions {
    display_name = "Messages waiting on ${each.value.name}"

    condition_threshold {
      filter          = "resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${each.value.name}\" AND metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\""
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
    content   = each.key == "audit" ? local.audit_dead_letter_doc : local.sync_dead_letter_doc
  }
}

# Before the sync queue existed this policy watched the audit hold subscription alone.
moved {
  from = google_monitoring_alert_policy.dead_letters
  to   = google_monitoring_alert_policy.dead_letters["audit"]
}

locals {
  audit_dead_letter_doc = <<-EOT
    Registry events were redelivered ${var.audit_max_delivery_attempts} times without a verdict (RETRY: a
    registry or storage fault, or the function unreachable) and were moved to the dead-letter topic. The
    changes they describe are not audited until they are replayed from subscription
    `${google_pubsub_subscription.dead_letter_hold["audit"].name}`.

    After fixing the cause, replay them through `${google_pubsub_topic.audit_replay.name}`, which feeds the
    auditor alone:

    ```
    ${local.replay_command}
    ```

    How to inspect them first: ${local.runbook}, section "Dead letters".
  EOT

  sync_dead_letter_doc = <<-EOT
    Index rebuild requests were redelivered ${var.sync_queue_max_delivery_attempts} times without a rebuild
    and were moved to `${google_pubsub_subscription.dead_letter_hold["sync"].name}`. The hourly resync rebuilds
    the branch head regardless; look at the rebuild function's `sync` lines for why the rebuild failed.

    What to do: ${local.runbook}, section "Dead letters".
  EOT

  # Scratch files go to a fresh temporary folder: anything left in the repository root would be zipped into
  # the next function upload.
  replay_command = join(" ", [
    "scratch=$(mktemp -d) &&",
    "gcloud pubsub subscriptions pull ${google_pubsub_subscription.dead_letter_hold["audit"].name} --project=${var.project} --auto-ack --limit=1000 --format=json > \"$scratch/dead-letters.json\" &&",
    "jq -r '.[].message.data | @base64d' \"$scratch/dead-letters.json\" > \"$scratch/payloads.jsonl\" &&",
    "while IFS= read -r payload; do gcloud pubsub topics publish ${google_pubsub_topic.audit_replay.name} --project=${var.project} --message=\"$payload\"; done < \"$scratch/payloads.jsonl\"",
  ])
}

# The auditor down or falling behind: registry events wait unacknowledged. Events in RETRY age too: those
# held back as `index behind` for up to `pending_grace_seconds` by design, which must not page, and those
# dead-lettered after `audit_max_delivery_attempts`, after which the backlog empties. The threshold plus its
# duration sits between the two.
locals {
  # When an event that stays RETRY is dead-lettered, counting the backoffs between its deliveries as
  # doubling from the minimum up to the maximum, Pub/Sub's exponential backoff; the deliveries themselves
  # add to it, so this is the earliest the backlog can empty.
  audit_dead_letter_seconds = sum([
    for attempt in range(var.audit_max_delivery_attempts - 1) :
    min(tonumber(trimsuffix(var.audit_max_backoff, "s")), tonumber(trimsuffix(var.audit_min_backoff, "s")) * pow(2, attempt))
  ])
  backlog_alert_seconds = var.backlog_age_threshold_seconds + var.backlog_age_duration_seconds
}

resource "google_monitoring_alert_policy" "backlog" {
  project               = var.project
  display_name          = "${var.name_prefix}: registry events waiting too long for a verdict"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.alert_channels
  user_labels           = local.labels

  conditions {
    display_name = "Oldest unacknowledged event on ${google_pubsub_subscription.audit.name}"

    condition_threshold {
      filter          = "resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${google_pubsub_subscription.audit.name}\" AND metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.backlog_age_threshold_seconds
      duration        = "${var.backlog_age_duration_seconds}s"

      aggregations {
        alignment_period   = "60s"
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
      The oldest registry event on `${google_pubsub_subscription.audit.name}` has waited more than
      ${var.backlog_age_threshold_seconds} s for a verdict: the audit function is down, refused, or falling behind.

      What to do: ${local.runbook}, section "Backlog".
    EOT
  }

  lifecycle {
    precondition {
      condition     = local.backlog_alert_seconds > var.pending_grace_seconds
      error_message = "backlog_age_threshold_seconds + backlog_age_duration_seconds must exceed pending_grace_seconds: events are RETRY `index behind` that long by design, and the backlog alert would page for every promotion racing its sync."
    }
    precondition {
      condition     = local.backlog_alert_seconds < local.audit_dead_letter_seconds
      error_message = "backlog_age_threshold_seconds + backlog_age_duration_seconds must stay below the ${local.audit_dead_letter_seconds} s after which audit_max_delivery_attempts dead-letter an event, or the backlog empties before the alert opens. Raise audit_max_delivery_attempts or lower the threshold."
    }
  }
}

# Pushes answered other than 2xx at a sustained rate: the function crashes, is refused by IAM or ingress, hits
# its instance limit, or every event ends in RETRY.
resource "google_monitoring_alert_policy" "push_failures" {
  project               = var.project
  display_name          = "${var.name_prefix}: pushes to the functions failing"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.alert_channels
  user_labels           = local.labels

  conditions {
    display_name = "Non-2xx push answers per second"

    condition_threshold {
      filter          = "resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=one_of(\"${google_pubsub_subscription.audit.name}\", \"${google_pubsub_subscription.audit_replay.name}\", \"${google_pubsub_subscription.sync_queue.name}\") AND metric.type=\"pubsub.googleapis.com/subscription/push_request_count\" AND metric.labels.response_class!=\"ack\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.push_failure_rate_threshold
      duration        = "${var.push_failure_duration_seconds}s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.subscription_id", "metric.label.response_class"]
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
      Pub/Sub pushes to the audit function (registry events or replayed ones) or to the rebuild function have been answered other than 2xx more than
      ${var.push_failure_rate_threshold} times a second for ${var.push_failure_duration_seconds} s.
      `response_class` says how: remote_server_4xx (IAM, ingress, instance limit), remote_server_5xx (crash or
      RETRY), unreachable, deadline_exceeded.

      What to do: ${local.runbook}, section "Pushes failing".
    EOT
  }
}

# The index follows the branch through the hourly resync: a success of it is periodic by construction.
resource "google_monitoring_alert_policy" "index_not_refreshed" {
  project               = var.project
  display_name          = "${var.name_prefix}: index not refreshed"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.alert_channels
  user_labels           = local.labels

  conditions {
    display_name = "No published or unchanged sync for ${var.index_refresh_absent_seconds} s"

    condition_absent {
      filter   = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.lines["index_refreshed"].name}\""
      duration = "${var.index_refresh_absent_seconds}s"

      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
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
      No sync or resync of the digest index has succeeded for ${var.index_refresh_absent_seconds} s, although
      the resync job runs on `${var.resync_schedule}`. Promotions merged since are judged against an old index.

      What to do: ${local.runbook}, section "Index not refreshed".
    EOT
  }

  # The builds are the metrics' propagation wait on the first apply (see the top of this file).
  depends_on = [
    time_sleep.log_metrics,
    google_cloudfunctions2_function.audit,
    google_cloudfunctions2_function.sync,
    google_cloudfunctions2_function.rebuild,
    google_cloudfunctions2_function.sweep,
  ]
}

# The sweep runs twice a day: no summary line for the longest absence window Cloud Monitoring allows (23.5 h)
# means a run did not happen or did not finish.
resource "google_monitoring_alert_policy" "sweep_liveness" {
  project               = var.project
  display_name          = "${var.name_prefix}: sweep not run or incomplete"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.alert_channels
  user_labels           = local.labels

  conditions {
    display_name = "No sweep summary for ${var.sweep_absent_seconds} s"

    condition_absent {
      filter   = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.lines["sweep_summaries"].name}\""
      duration = "${var.sweep_absent_seconds}s"

      aggregations {
        alignment_period     = "3600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }

      trigger {
        count = 1
      }
    }
  }

  conditions {
    display_name = "Sweep left part of the registries unswept"

    condition_threshold {
      filter          = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.lines["sweep_summaries"].name}\" AND metric.labels.complete=\"false\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "3600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
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
      The sweep (`${var.sweep_schedule}`) logged no summary for ${var.sweep_absent_seconds} s, or its
      last summary says `complete: false`. Until it runs to the end, lost events and half-done promotions go
      unseen.

      `resource.labels.service_name="${local.function_names["sweep"]}" jsonPayload.sweep:*`

      What to do: ${local.runbook}, section "Sweep not run or incomplete".
    EOT
  }

  # The builds are the metrics' propagation wait on the first apply (see the top of this file).
  depends_on = [
    time_sleep.log_metrics,
    google_cloudfunctions2_function.audit,
    google_cloudfunctions2_function.sync,
    google_cloudfunctions2_function.rebuild,
    google_cloudfunctions2_function.sweep,
  ]
}
