terraform {
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 5.40, < 7.0"
    }
    # Only for google_project_service_identity, which the GA provider does not have: the Pub/Sub service
    # agent must exist before the module grants it roles.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = ">= 5.40, < 7.0"
    }
    # archive >= 2.5: glob patterns in `excludes` (2.4 takes "**/__pycache__" literally and zips the caches)
    # and `output_file_mode`.
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.5"
    }
    # Signs the resync job's body (scripts/hmac-sha256.sh).
    external = {
      source  = "hashicorp/external"
      version = ">= 2.3"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.5"
    }
    # Waits for IAM grants and log-based metrics to propagate before what needs them is created.
    time = {
      source  = "hashicorp/time"
      version = ">= 0.9"
    }
  }
}

provider "google" {
  project        = var.project
  region         = var.region
  default_labels = var.labels
}

provider "google-beta" {
  project        = var.project
  region         = var.region
  default_labels = var.labels
}
