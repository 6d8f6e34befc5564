terraform {
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 5.40, < 7.0"
    }
    # archive >= 2.4 understands glob patterns in `excludes`.
    archive = {
      source  = "hashicorp/archive"
      version = ">= 2.4"
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
  }
}

provider "google" {
  project        = var.project
  region         = var.region
  default_labels = var.labels
}
