"""The digest index: the manifests it is built from, the index itself, where it is stored, publishing it,
and the commits accepted but not yet published."""
