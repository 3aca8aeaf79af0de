"""`email2ticket ticket ...` and `tickets list`: the tickets, read and assigned by the admin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .common import admin_store, print_json, terminal_safe

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


def cmd_ticket_show(args: argparse.Namespace, config: Config) -> int:
    ticket = admin_store(config).show_ticket(args.id)
    if args.json:
        print_json(ticket)
        return 0
    # Every value that came with a mail goes through terminal_safe: a subject can carry escape sequences.
    safe = terminal_safe
    print(f"Ticket #{ticket['id']}: {safe(ticket['subject'])}  [{ticket['status']}]")
    print(f"Requester: {safe(ticket['requester'])}   Technician: {safe(ticket['technician'] or '-')}")
    print(f"Opened: {ticket['created_at']}   Message-ID: {safe(ticket['message_id'] or '-')}\n")
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


def cmd_tickets_list(args: argparse.Namespace, config: Config) -> int:
    tickets = admin_store(config).list_tickets()
    if args.json:
        print_json(tickets)
    for t in [] if args.json else tickets:
        requester, technician = terminal_safe(t["requester"]), terminal_safe(t["technician"] or "-")
        print(f"#{t['id']:<6} {t['status']:7} {requester:30} {technician:24} {terminal_safe(t['subject'])}")
    return 0


def register_tickets(parser: argparse.ArgumentParser) -> None:
    """The `tickets` group."""
    listing = parser.add_subparsers(dest="sub", required=True).add_parser("list", help="list tickets")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_tickets_list)
