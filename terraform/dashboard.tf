# One page for on-call: what the auditor decided, whether it keeps up, and how fresh its index is.

locals {
  log_metric_type = "metric.type=\"logging.googleapis.com/user/%s\""

  dashboard_charts = [
    {
      title   = "Verdicts per reason (events)"
      filter  = "${format(local.log_metric_type, google_logging_metric.lines["verdicts"].name)} AND metric.labels.source=\"event\""
      aligner = "ALIGN_RATE"
      group   = ["metric.label.verdict", "metric.label.reason"]
    },
    {
      title   = "RETRY verdicts per second"
      filter  = "${format(local.log_metric_type, google_logging_metric.lines["verdicts"].name)} AND metric.labels.verdict=\"RETRY\""
      aligner = "ALIGN_RATE"
      group   = ["metric.label.reason"]
    },
    {
      title   = "Oldest unacknowledged registry event (s)"
      filter  = "metric.type=\"pubsub.googleapis.com/subscription/oldest_unacked_message_age\" AND resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${google_pubsub_subscription.audit.name}\""
      aligner = "ALIGN_MAX"
      group   = []
    },
    {
      # The index is as old as the last successful sync: gaps here are the index aging.
      title   = "Index refreshes (published / unchanged)"
      filter  = format(local.log_metric_type, google_logging_metric.lines["index_refreshed"].name)
      aligner = "ALIGN_SUM"
      group   = ["metric.label.outcome"]
    },
    {
      title   = "Stale sync / unreadable index lines"
      filter  = format(local.log_metric_type, google_logging_metric.lines["freshness_errors"].name)
      aligner = "ALIGN_SUM"
      group   = ["metric.label.freshness"]
    },
    {
      title   = "Sweep findings per region"
      filter  = "${format(local.log_metric_type, google_logging_metric.lines["verdicts"].name)} AND metric.labels.source=\"sweep\""
      aligner = "ALIGN_SUM"
      group   = ["metric.label.host", "metric.label.verdict"]
    },
  ]
}

resource "google_monitoring_dashboard" "auditor" {
  project = var.project
  dashboard_json = jsonencode({
    displayName = "Registry auditor (${var.name_prefix})"
    mosaicLayout = {
      columns = 12
      tiles = [
        # The API leaves out fields at their defaults (a 0 position, an empty group-by, REDUCE_NONE) and
        # the provider then shows a diff on every plan (terraform-provider-google issue #16173), so they
        # are never sent.
        for position, chart in local.dashboard_charts : merge(
          (position % 2) == 0 ? {} : { xPos = 6 },
          position < 2 ? {} : { yPos = floor(position / 2) * 4 },
          {
            width  = 6
            height = 4
            widget = {
              title = chart.title
              xyChart = {
                dataSets = [{
                  plotType = "LINE"
                  timeSeriesQuery = {
                    timeSeriesFilter = {
                      filter = chart.filter
                      # A tuple of none or one object: a conditional could not yield {} or an object of
                      # a string and a list, whose types differ.
                      aggregation = merge(
                        {
                          alignmentPeriod  = "300s"
                          perSeriesAligner = chart.aligner
                        },
                        [for group in [chart.group] : {
                          crossSeriesReducer = "REDUCE_SUM"
                          groupByFields      = group
                        } if length(group) > 0]...
                      )
                    }
                  }
                }]
              }
            }
          },
        )
      ]
    }
  })

  depends_on = [
    time_sleep.log_metrics,
    google_cloudfunctions2_function.audit,
    google_cloudfunctions2_function.sync,
    google_cloudfunctions2_function.rebuild,
    google_cloudfunctions2_function.sweep,
  ]
}
