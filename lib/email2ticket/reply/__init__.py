"""Cutting the quoted history off a reply: extract.py is the one entry point; separators.py and
separator_list.py (the built-in list, as data), search.py, encoded_forms.py, taglines.py, html.py and
cut_report.py (how `separators test` shows a cut).
"""
