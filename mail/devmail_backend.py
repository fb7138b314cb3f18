"""The IMAP side of the development mail server: pymap's in-memory ("dict") backend with the
logins `noticeflow devmail` promises (see DESIGN.md) and programmatic access for tests.

Everything here runs on the IMAP server's event loop; `mail.devmail` hands work over to it.
"""
from __future__ import annotations

from argparse import Namespace
from datetime import datetime

from pymap.backend.dict import Config, Identity, Login
from pymap.backend.dict.filter import FilterSet
from pymap.backend.dict.mailbox import MailboxSet
from pymap.concurrent import Subsystem
from pymap.exceptions import AuthorizationFailure, InvalidAuth
from pymap.imap import IMAPServer
from pymap.interfaces.login import IdentityInterface
from pymap.parsing.message import AppendMessage
from pymap.parsing.specials import FetchRequirement
from pymap.user import UserMetadata
from proxyprotocol.reader import ProxyProtocolReader
from proxyprotocol.version import ProxyProtocolVersion
from pysasl.creds.server import ServerCredentials
from pysasl.hashing import Cleartext

SERVER_NAME = "noticeflow-devmail"


def mailbox_key(address: str) -> str:
    """Mailboxes are named by address; addresses compare case-insensitively."""
    return address.strip().lower()


class DevMailConfig(Config):
    """pymap's dict-backend configuration for loopback development use."""

    @property
    def greeting(self) -> bytes:
        # pymap's default greeting resolves the host's FQDN on every connection, which can stall
        # for seconds on a machine without working DNS.
        return b"Server ready " + SERVER_NAME.encode("ascii")

    @property
    def id_response(self) -> dict[bytes, bytes]:
        return {b"name": SERVER_NAME.encode("ascii")}


def make_config(host: str, port: int) -> DevMailConfig:
    # pymap reads a few attributes from its command-line namespace even when configured in code.
    args = Namespace(debug=False, passlib_cfg=None, proxy_protocol=None, inherited_sockets=None)
    return DevMailConfig(
        args,
        host=host,
        port=port,
        demo_data=False,
        demo_user="",
        demo_password="",
        tls_enabled=False,
        reject_dnsbl=False,
        # Passwords are dev defaults compared in clear; checking them inline on the loop avoids a
        # thread pool per server that nothing would shut down.
        hash_context=Cleartext(),
        subsystem=Subsystem.for_asyncio(),
        cpu_subsystem=Subsystem.for_asyncio(),
        invalid_user_sleep=0.0,
    )


class DevMailLogin(Login):
    """The office logs in with its own password; any other address with the shared dev password.
    A mailbox is created at its first login."""

    def __init__(self, config: DevMailConfig, *, office_user: str, office_password: str,
                 other_password: str) -> None:
        super().__init__(config)
        self.office_key = mailbox_key(office_user)
        self._office_password = office_password
        self._other_password = other_password

    def expected_password(self, key: str) -> str | None:
        if key == self.office_key:
            return self._office_password
        if "@" in key:
            return self._other_password
        return None

    async def authenticate(self, credentials: ServerCredentials) -> Identity:
        key = mailbox_key(credentials.authcid)
        expected = self.expected_password(key)
        if expected is None:
            raise InvalidAuth()
        # Verified against the login exactly as typed, so case differences in the address pass
        # while the password must match exactly.
        claimed = UserMetadata(self.config, credentials.authcid, password=expected)
        if not credentials.verify(claimed):
            raise InvalidAuth()
        await self.ensure_user(key)
        return Identity(key, self, None, frozenset())

    async def authorize(self, authenticated: IdentityInterface, authzid: str) -> Identity:
        if mailbox_key(authzid) != authenticated.name:
            raise AuthorizationFailure()
        return Identity(authenticated.name, self, None, authenticated.roles)

    async def ensure_user(self, key: str) -> MailboxSet:
        """The mailbox set of one address, created on first use."""
        if key not in self.users_dict:
            self.users_dict[key] = UserMetadata(self.config, key)
        cached = self.config.set_cache.get(key)
        if cached is None:
            cached = (MailboxSet(), FilterSet())
            self.config.set_cache[key] = cached
        return cached[0]

    def connection_handler(self):
        """The client-connected callback for asyncio.start_server, as pymap's own IMAP service
        builds it (pymap.imap.IMAPService.start), minus the listening it does itself: we need
        the bound port back when asked for port 0."""
        reader = ProxyProtocolReader(ProxyProtocolVersion.get(None))
        return reader.get_callback(IMAPServer(self, self.config))


async def append_message(login: DevMailLogin, address: str, raw: bytes, when: datetime,
                         folder: str = "INBOX") -> None:
    mailboxes = await login.ensure_user(mailbox_key(address))
    mailbox = await mailboxes.get_mailbox(folder)
    await mailbox.append(AppendMessage(raw, when, frozenset()), recent=True)


async def read_messages(login: DevMailLogin, address: str, folder: str = "INBOX") -> list[bytes]:
    """Raw bytes of the messages in one folder, in UID order; none for an address never used.
    An unknown folder of an existing mailbox raises KeyError (a typo must not pass as 'empty')."""
    cached = login.config.set_cache.get(mailbox_key(address))
    if cached is None:
        return []
    mailbox = await cached[0].get_mailbox(folder)
    messages = [message async for message in mailbox.messages()]
    messages.sort(key=lambda message: message.uid)
    result = []
    for message in messages:
        loaded = await message.load_content(FetchRequirement.CONTENT)
        result.append(bytes(loaded))
    return result
