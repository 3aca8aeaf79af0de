"""The commands: `email2ticket-deliver` (deliver.py, the MTA's pipe) and `email2ticket` (admin.py and one
module per group of verbs). Entrances only: every delivery goes through the delivery layer (delivery/).
"""
