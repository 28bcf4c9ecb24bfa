"""Stand-ins for the external systems the project talks to, speaking their real protocols (tests, `make run`)."""
