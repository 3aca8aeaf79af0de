"""Reading mail: message.py parses bytes into plain data (the MIME details in mime/), limits.py and
lift.py bound what that may cost, subject.py reads ticket numbers and prefixes, envelope.py the MTA's
envelope. Pure: no I/O.
"""
