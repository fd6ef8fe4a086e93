"""Runtimes: where model versions actually run (Kubernetes in production, local processes for
development and the demo). Nothing in this package imports Django models."""
