"""The one delivery layer every entrance calls: run.py (deliver, log, notify), core.py (parse, decide,
write in one transaction), attempts.py (poison messages), redeliver.py (release and replay),
deadline.py (budgets no code can outlast) and answer.py (what the MTA is told).
"""
