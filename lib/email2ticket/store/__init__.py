"""Persistence: the tables (schema.py), connecting (engine.py), delivery's reads and writes
(delivery.py), the typed ORM for admin commands (models.py, admin.py) and migrations (migrate.py).

Nothing here is imported until a delivery or a command actually needs the database.
"""
