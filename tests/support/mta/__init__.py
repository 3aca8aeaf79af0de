"""Private, throw-away mail servers for the end-to-end tests: Postfix (unpacked from its Debian package),
Exim (the installed exim4-daemon-light with its own configuration) and procmail, each on loopback only,
delivering through a non-editable email2ticket install run as an unprivileged pipe user.

Nothing here imports pytest, so a script under bench/ can drive the same servers.
"""
