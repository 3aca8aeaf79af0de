"""Real servers started by the tests on loopback or Unix sockets: PostgreSQL, DNS, an SMTP sink, our service."""
