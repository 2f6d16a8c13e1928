"""The pipeline benchmark: throughput, freshness and memory of the local stack, as users feel them.

``python -m bench`` (``make bench``) starts a private Kafka and MinIO, writes a workload fitted to the recorded venue
sessions straight into Kafka with the ingestor's record contract, and runs the scenarios: backfill, live, floor, with
the memory of every process sampled throughout. See bench/README.md.
"""
