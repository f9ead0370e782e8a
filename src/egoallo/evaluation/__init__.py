"""Evaluation: cases from motion capture, the paper's metrics, benchmarks."""
