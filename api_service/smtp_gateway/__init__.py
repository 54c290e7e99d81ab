"""The API side of the SMTP gateway: token checks and durable storage of SMTP submissions."""
