"""The live dashboard of ``cryptolake up`` and ``cryptolake dashboard``, and the file ``cryptolake chart`` writes."""
