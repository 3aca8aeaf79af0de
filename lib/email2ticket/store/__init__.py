"""Persistence: the tables (schema.py), connecting (engine.py; behind PgBouncer in transaction mode:
pooling.py), delivery's reads and writes
(delivery.py), the typed ORM for admin commands (models.py, admin.py), migrations (migrate.py) and what
monitoring reads (monitoring.py). Routing: what a new ticket gets from its queue and the filters
(placement.py, dialect.py), the admin's queues and filters (routing_admin.py), how tickets are listed
(ticket_rows.py). A ticket's Cc participants (participants.py) and the admin's edits of them and merges
(merge.py).

Nothing here is imported until a delivery or a command actually needs the database.
"""
