"""Code that two or more services use: config, logging, events, bus, database, blobs, outbox, runtime."""
