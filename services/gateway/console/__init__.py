"""The operator console's API under /console/api/v1: accounts, queues, students, schools, dead letters, audit."""
