"""Sender verification: is the From: address backed by more than its own say-so?

verdict.py holds the verdict model; verify.py decides from the headers, trusted Authentication-Results
(authresults.py) or our own DKIM check (dkim.py, alignment.py, dns_budget.py); binding.py says whether the
evidence covers the very header instances the rules read. Pure apart from DNS, and
imported by delivery only when a privilege depends on the answer.
"""
