"""Operating it: `email2ticket doctor`'s checks of the installation, the database, the service's sockets and
the MTA wiring, and the metrics monitoring reads (metrics.py)."""
