"""The resident service: client.py (the pipe command's front door, import-cheap), pipe.py (its protocol),
lmtp.py, worker.py (deliveries on pooled connections and threads), sender.py (notifications and their retry
timer), server.py (sockets, workers), reload.py (SIGHUP) and metrics.py (the Prometheus endpoint).
"""
