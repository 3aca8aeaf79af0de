"""The decision, as data: named rules returning a verdict with a sentence (one module per family) and
the chain that consults them in order (chain.py); decision.py holds the facts and the record, and
routing_facts.py the data of queues and filters (routing.py, filters.py).
"""
