"""`email2ticket ticket ...` and `tickets list`: the tickets, read and assigned by the admin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .common import admin_store, print_json

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
    print(f"Ticket #{ticket['id']}: {ticket['subject']}  [{ticket['status']}]")
    print(f"Requester: {ticket['requester']}   Technician: {ticket['technician'] or '-'}")
    print(f"Opened: {ticket['created_at']}   Message-ID: {ticket['message_id'] or '-'}\n")
    if ticket.get("unverified_sender"):
        print("Opened by an UNVERIFIED sender: the From: address claimed a privilege it could not prove.\n")
    print(ticket["description"])
    _print_attachments(ticket["attachments"])
    for comment in ticket["comments"]:
        verified = "verified" if comment.get("verified") else "sender not verified"
        print(f"\n--- comment by {comment['author']} ({verified}) at {comment['created_at']}\n{comment['body']}")
        _print_attachments(comment["attachments"])
    return 0


def _print_attachments(attachments: list[dict[str, Any]]) -> None:
    for a in attachments:
        print(f"  [attachment] {a['filename'] or '(no name)'}  {a['content_type']}  {a['size']} bytes")


def cmd_ticket_assign(args: argparse.Namespace, config: Config) -> int:
    ticket = admin_store(config).assign_ticket(args.id, args.email)
    print(f"ticket #{ticket['id']} assigned to {ticket['technician']}")
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
        print(f"#{t['id']:<6} {t['status']:7} {t['requester']:30} {t['technician'] or '-':24} {t['subject']}")
    return 0


def register_tickets(parser: argparse.ArgumentParser) -> None:
    """The `tickets` group."""
    listing = parser.add_subparsers(dest="sub", required=True).add_parser("list", help="list tickets")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_tickets_list)
