"""The parts of `email2ticket.mail.message`: how a raw mail becomes text, headers and attachments.

`email2ticket.mail.message` is the public face (`parse_message` and the records it returns); the modules here are
its internals, one concept each: the MIME tree (`tree`), choosing the body and reading parts (`body`), header
fields and MIME parameters (`headers`), charsets and text hygiene (`text`), HTML to text (`html_text`; the
conversion without a tree in `html_stream`), attachment names (`filenames`), the body digest (`digest`) and defect
notes (`notes`).  Nothing here raises on bad mail: every module records problems as notes.
"""
