"""The web admin (`email2ticket web`): the "Configure Email Settings" form and the audit trail in a browser.

An entrance like cli/ and service/, over the same store and the same functions the admin commands call. It is
an optional extra (`pip install 'email2ticket[web]'`: Starlette, Jinja2, uvicorn, itsdangerous,
python-multipart); delivery never imports it.
"""
