"""One board's agent: its durable store, the MoA coordinator, admission, peers and the outbox."""
