"""Measurement: accuracy on labelled images, latency, memory, and the report."""
