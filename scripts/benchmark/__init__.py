"""Benchmarks of the auditor, one module per scenario, printed as one table; ratios are measured within one
run (the machines are shared). Measuring only: what must hold is tested in tests/.

    .venv/bin/python scripts/benchmark [--events N] [--skip-registry] [--skip-gcs] [--skip-sweep]

Needs the k8s.io snapshot at ../shared/data/k8s.io/registry.k8s.io; the registry scenarios need Debian's
docker-registry, the cold start the fake-gcs-server wrapper.
"""
