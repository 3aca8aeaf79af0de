"""Configuration: the TOML file the MTA's command reads (model.py, load.py, service.py for its [service]
table) and the rule settings an admin changes in the database (rule_settings.py)."""
