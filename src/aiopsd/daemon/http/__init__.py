"""The HTTP surface of the daemon: JSON API, webhook intake and auth, the status views and pages."""
