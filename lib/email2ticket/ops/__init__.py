"""Operating it: `email2ticket doctor`'s checks of the installation, the database and the MTA wiring."""
