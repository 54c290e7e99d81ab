"""DMARC aggregate and failure reports, and SMTP TLS reports, received for the domains."""
