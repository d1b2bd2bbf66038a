"""Utility metrics for encoders and classifiers (kNN, linear probe, accuracy)."""
