"""Configuration: the TOML file the MTA's command reads (model.py, load.py) and the rule settings
an admin changes in the database (rule_settings.py)."""
