"""Names of the Kafka headers the ingestor writes on every record and silver reads back."""

EXCHANGE_HEADER = "exchange"  # the venue the frame came from
RECEIVED_HEADER = "received_at_us"  # when the ingestor received it, microseconds since the epoch
REPLAY_HEADER = "replay"  # "1" on frames of the local venue (recordings, synthetic trades): no age bound in silver
BACKFILL_HEADER = "backfill"  # "1" on frames `cryptolake backfill` makes from a venue's archive: no age bound in silver
FILLED_HEADER = "filled"  # "1" on frames the ingestor fetched over REST to fill a gap in the trade ids
