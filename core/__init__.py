"""The floor every other package stands on: settings, logging, the lake's layout, jar pins, Kafka headers, venues.

It imports nothing of the project; ``ingestion`` and ``jobs`` import only it, and the ``cryptolake`` app imports all.
"""
