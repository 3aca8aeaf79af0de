"""Real DKIM keys and signatures for tests and the benchmark: RSA (cryptography) and Ed25519 (PyNaCl),
signed with dkimpy exactly as a sending MTA would, published as TXT records on tests/support/servers/dnsserver.py.

    key = rsa_key("helpdesk.example")
    server.add_txt(key.dns_name, key.txt)
    signed = sign(raw, key)
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import dkim
import nacl.signing
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass(frozen=True)
class SigningKey:
    """A private key as dkimpy signs with it, and its public half as a DKIM TXT record."""

    domain: str
    selector: str
    algorithm: bytes  # b"rsa-sha256" or b"ed25519-sha256"
    private: bytes
    txt: str

    @property
    def dns_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"


def rsa_key(domain: str, selector: str = "rsa2048", bits: int = 2048) -> SigningKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    txt = f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode('ascii')}"
    return SigningKey(domain, selector, b"rsa-sha256", private, txt)


def ed25519_key(domain: str, selector: str = "ed25519") -> SigningKey:
    key = nacl.signing.SigningKey.generate()
    private = base64.b64encode(bytes(key))  # the 32-byte seed, as dkimpy expects it
    txt = f"v=DKIM1; k=ed25519; p={base64.b64encode(bytes(key.verify_key)).decode('ascii')}"
    return SigningKey(domain, selector, b"ed25519-sha256", private, txt)


# What a sending MTA signs by default (OpenDKIM, rspamd and Gmail sign these and more): every header email2ticket
# decides by, where present; dkimpy signs a listed header the message lacks as absent.
SIGNED_HEADERS = (b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"in-reply-to", b"references", b"reply-to")


class _DatedDKIM(dkim.DKIM):  # type: ignore[misc]
    """dkimpy signs with t=now and no x=; tests of expiry need both set in the past."""

    dates: tuple[int, int] | None = None

    def gen_header(self, fields: list[tuple[bytes, bytes]], *args: Any, **kwargs: Any) -> Any:
        if self.dates is not None:
            signed_at, expires_at = self.dates
            kept = [(k, v) for k, v in fields if k != b"t"]
            at = next(i for i, (k, _) in enumerate(kept) if k == b"h")
            dated = [(b"t", str(signed_at).encode()), (b"x", str(expires_at).encode())]
            fields = kept[:at] + dated + kept[at:]
        return super().gen_header(fields, *args, **kwargs)


def signature_header(
    message: bytes,
    key: SigningKey,
    *,
    length: bool = False,
    dates: tuple[int, int] | None = None,
    canonicalize: tuple[bytes, bytes] = (b"relaxed", b"relaxed"),
    include_headers: list[bytes] | None = None,
) -> bytes:
    """The DKIM-Signature header line (ending in CRLF) for `message`."""
    signer = _DatedDKIM(message, signature_algorithm=key.algorithm)
    signer.dates = dates
    header: bytes = signer.sign(
        key.selector.encode(),
        key.domain.encode(),
        key.private,
        canonicalize=canonicalize,
        include_headers=include_headers or list(SIGNED_HEADERS),
        length=length,
    )
    return header


def sign(message: bytes, key: SigningKey, **options: Any) -> bytes:
    """`message` with a DKIM-Signature prepended, in the message's own line endings (LF, as a pipe gets it)."""
    header = signature_header(message, key, **options)
    if b"\r\n" not in message:
        header = header.replace(b"\r\n", b"\n")
    return header + message
