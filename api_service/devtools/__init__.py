"""Running Postgate on one machine without set-up: the `make run` launcher and the embedded PostgreSQL."""
