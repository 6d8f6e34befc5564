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
        for position, chart in local.dashboard_charts : {
          xPos   = (position % 2) * 6
          yPos   = floor(position / 2) * 4
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
                    aggregation = {
                      alignmentPeriod    = "300s"
                      perSeriesAligner   = chart.aligner
                      crossSeriesReducer = length(chart.group) > 0 ? "REDUCE_SUM" : "REDUCE_NONE"
                      groupByFields      = chart.group
                    }
                  }
                }
              }]
            }
          }
        }
      ]
    }
  })

  depends_on = [time_sleep.log_metrics]
}
