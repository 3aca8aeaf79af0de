"""The resident service: client.py (the pipe command's front door, import-cheap), pipe.py (its protocol),
lmtp.py, worker.py (deliveries on pooled connections and threads) and server.py (sockets, workers).
"""
