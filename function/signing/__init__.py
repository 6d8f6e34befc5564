"""Cryptographic verification of cosign / Sigstore signatures of promoted images (CONTRACT.md, Signatures).

Self-contained: the caller fetches manifests and blobs (capped at ``cosign.MAX_PAYLOAD_BYTES`` /
``MAX_ENVELOPE_BYTES`` / ``bundle.MAX_BUNDLE_BYTES``), reads AUDITOR_SIGNERS with ``signers.parse_signers``
and AUDITOR_TRUSTED_ROOT with ``trust.TrustRoot.from_json`` (or ``TrustRoot.default()``), and gets a
``results.Verified`` or a ``results.Failed`` naming the first check that failed. Nothing here reads the
network, the environment or the file system (but sigstore-python's shipped root).

This package imports nothing itself: ``signers`` and ``results`` are light, while ``cosign``, ``bundle`` and
``trust`` load cryptography and sigstore-python (about half a second), which only a signature check pays.
"""
