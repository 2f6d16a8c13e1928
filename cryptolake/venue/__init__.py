"""Local sources of venue frames: the local venue server, the synthetic generator, and recording and replaying."""
