"""The digest index: the manifests it is built from, the index itself, where it is stored, and publishing it."""
