"""Mail we send: render.py (templates, headers that keep loops away), send.py (after the commit, and
retries), transport.py (sendmail or SMTP) and keys.py (the HMAC keys of our Message-ID tokens).
"""
