terraform {
  # 1.11: write-only arguments and ephemeral resources, so that the webhook secret never enters state.
  required_version = ">= 1.11.0"

  required_providers {
    # 7.x: google_secret_manager_secret_version's write-only secret_data_wo (since 6.23) and the 7.0 defaults
    # this module was written against; `~>` keeps a major release from arriving with a plain `init -upgrade`.
    google = {
      source  = "hashicorp/google"
      version = "~> 7.0"
    }
    # Only for google_project_service_identity, which the GA provider does not have: the Pub/Sub service
    # agent must exist before the module grants it roles.
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 7.0"
    }
    # 2.5: glob patterns in `excludes` (2.4 takes "**/__pycache__" literally and zips the caches) and
    # `output_file_mode`.
    archive = {
      source  = "hashicorp/archive"
      version = "~> 2.5"
    }
    # 3.7: the ephemeral random_password, whose value reaches Secret Manager without entering state.
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
    # Waits for IAM grants and the Pub/Sub service agent to propagate before what needs them is created.
    time = {
      source  = "hashicorp/time"
      version = "~> 0.12"
    }
  }
}

provider "google" {
  project        = var.project
  region         = var.region
  default_labels = local.labels
}

provider "google-beta" {
  project        = var.project
  region         = var.region
  default_labels = local.labels
}
