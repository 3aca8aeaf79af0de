"""`email2ticket ticket ...` and `tickets list`: the tickets, read and assigned by the admin."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from .common import ArgumentError, admin_store, print_json, terminal_safe

if TYPE_CHECKING:
    import argparse

    from ..config.model import Config


def register_ticket(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sub", required=True)
    show = sub.add_parser("show", help="a ticket with its comments and attachments")
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_ticket_show)
    assign = sub.add_parser("assign", help="assign a ticket to a technician")
    assign.add_argument("id", type=int)
    assign.add_argument("email")
    assign.set_defaults(handler=cmd_ticket_assign)
    close = sub.add_parser("close", help="close a ticket")
    close.add_argument("id", type=int)
    close.set_defaults(handler=cmd_ticket_close)
    people = sub.add_parser("participants", help="a ticket's Cc participants: list, add or remove one")
    people.add_argument("id", type=int)
    people.add_argument("change", nargs="?", choices=("add", "remove"))
    people.add_argument("email", nargs="?")
    people.add_argument("--json", action="store_true")
    people.set_defaults(handler=cmd_ticket_participants)
    merge = sub.add_parser("merge", help="merge ticket SOURCE into TARGET (comments, attachments, participants)")
    merge.add_argument("source", type=int)
    merge.add_argument("target", type=int)
    merge.set_defaults(handler=cmd_ticket_merge)


def cmd_ticket_show(args: argparse.Namespace, config: Config) -> int:
    ticket = admin_store(config).show_ticket(args.id)
    if args.json:
        print_json(ticket)
        return 0
    # Every value that came with a mail goes through terminal_safe: a subject can carry escape sequences.
    safe = terminal_safe
    print(f"Ticket #{ticket['id']}: {safe(ticket['subject'])}  [{ticket['status']}]")
    print(f"Requester: {safe(ticket['requester'])}   Technician: {safe(ticket['technician'] or '-')}")
    tags = ", ".join(ticket["tags"]) or "-"
    print(f"Queue: {safe(ticket['queue'] or '-')}   Priority: {ticket['priority']}   Tags: {safe(tags)}")
    print(f"Opened: {ticket['created_at']}   Message-ID: {safe(ticket['message_id'] or '-')}\n")
    if ticket.get("participants"):
        print(f"Participants: {safe(', '.join(ticket['participants']))}\n")
    if ticket.get("merged_into"):
        print(f"Merged into ticket #{ticket['merged_into']}: replies to this ticket land there.\n")
    if ticket.get("unverified_sender"):
        print("Opened by an UNVERIFIED sender: the From: address claimed a privilege it could not prove.\n")
    print(safe(ticket["description"], multiline=True))
    _print_attachments(ticket["attachments"])
    for comment in ticket["comments"]:
        verified = "verified" if comment.get("verified") else "sender not verified"
        print(f"\n--- comment by {safe(comment['author'])} ({verified}) at {comment['created_at']}")
        print(safe(comment["body"], multiline=True))
        _print_attachments(comment["attachments"])
    return 0


def _print_attachments(attachments: list[dict[str, Any]]) -> None:
    for a in attachments:
        name, kind = terminal_safe(a["filename"] or "(no name)"), terminal_safe(a["content_type"])
        print(f"  [attachment] {name}  {kind}  {a['size']} bytes")


def cmd_ticket_assign(args: argparse.Namespace, config: Config) -> int:
    ticket = admin_store(config).assign_ticket(args.id, args.email)
    print(f"ticket #{ticket['id']} assigned to {terminal_safe(ticket['technician'])}")
    return 0


def cmd_ticket_close(args: argparse.Namespace, config: Config) -> int:
    ticket = admin_store(config).close_ticket(args.id)
    print(f"ticket #{ticket['id']} closed")
    return 0


def cmd_ticket_participants(args: argparse.Namespace, config: Config) -> int:
    from ..store.merge import add_participant, participants, remove_participant

    if args.change is not None and not args.email:
        raise ArgumentError(f"ticket participants {args.id} {args.change} needs an EMAIL")
    if args.change is None and args.email:
        raise ArgumentError("say add or remove before the EMAIL")
    with admin_store(config).session() as s:
        if args.change is not None:
            change = add_participant if args.change == "add" else remove_participant
            print(terminal_safe(change(s, args.id, args.email)), file=sys.stderr if args.json else sys.stdout)
            s.flush()
        found = participants(s, args.id)
    if args.json:
        print_json(found)
    elif args.change is None:
        for address in found:
            print(terminal_safe(address))
    return 0


def cmd_ticket_merge(args: argparse.Namespace, config: Config) -> int:
    from ..store.merge import merge_tickets

    with admin_store(config).session() as s:
        merged = merge_tickets(s, args.source, args.target)
    added = terminal_safe(", ".join(merged["participants_added"]) or "none")
    print(f"ticket #{args.source} merged into ticket #{args.target} and closed (participants added: {added})")
    return 0


def cmd_tickets_list(args: argparse.Namespace, config: Config) -> int:
    tickets = admin_store(config).list_tickets(queue=args.queue)
    if args.json:
        print_json(tickets)
    for t in [] if args.json else tickets:
        requester, technician = terminal_safe(t["requester"]), terminal_safe(t["technician"] or "-")
        queue = terminal_safe(t["queue"] or "-")
        print(f"#{t['id']:<6} {t['status']:7} {t['priority']:7} {queue:12} {requester:30} {technician:24} "
              f"{terminal_safe(t['subject'])}")  # fmt: skip
    return 0


def register_tickets(parser: argparse.ArgumentParser) -> None:
    """The `tickets` group."""
    listing = parser.add_subparsers(dest="sub", required=True).add_parser("list", help="list tickets")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--queue", metavar="NAME", help="only the tickets of this queue")
    listing.set_defaults(handler=cmd_tickets_list)
