"""Stand-ins for external systems, speaking their real protocols: for the tests and `make run`."""
