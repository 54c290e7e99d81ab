"""The web console under /console: server-rendered pages over the domain services."""
