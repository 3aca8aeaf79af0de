"""The decision, as data: named rules returning a verdict with a sentence (one module per family) and
the chain that consults them in order (chain.py); decision.py holds the facts and the record.
"""
