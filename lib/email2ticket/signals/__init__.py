"""What a message says about itself: automatic mail, bounces (bounce.py, bounce_flufl.py), our own mail
coming back (tokens.py), spam headers; classify.py names every signal for the loop rules. lazy_patterns.py
compiles their regular expressions on first use, the subject patterns only for subjects that may match.
"""
