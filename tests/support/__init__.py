"""The test harness: builders of mail and desks, the real servers the tests start, the MTA instances."""
