"""The client's address, scheme and host, as told by trusted reverse proxies.

``ProxyHeaders`` reads ``X-Forwarded-For``, ``-Proto`` and ``-Host``, or with ``forwarded=True``
``Forwarded`` (RFC 7239), never both, and only from a direct peer that is listed as trusted.

SPEC: RFC 7239 (``Forwarded``); ``X-Forwarded-*`` have no specification, the rules here are the
common practice of proxies that append to them.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
from collections.abc import Generator, Iterable, Sequence
from typing import NamedTuple

from microweb import App, Headers, HTTPError, Request, Response
from microweb._parsing import QUOTED_PAIRS, header_value
from microweb._request import logged_method, logged_path
from microweb._target import valid_host

logger = logging.getLogger("microweb.proxy")

Flow = Generator[Response | None, Response, None]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Client = tuple[str, int]

# SPEC: RFC 9110 5.6.2 token and 5.6.4 quoted-string, the values of RFC 7239 section 4.
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# PERF: plain characters in runs, and the quoted pairs possessive (Python 3.11+): a group
# repeated for each character took 1.4 MB (190 bytes a byte) to read 8 KB of one quoted value,
# within MAX_VALUE_SIZE (hostile5).
_PAIR = re.compile(rf'({_TOKEN})=({_TOKEN}|"[^"\\]*{QUOTED_PAIRS}")')
_OWS = re.compile(r"[ \t]+")
_QUOTED_PAIR = re.compile(r"\\(.)")
# SPEC: RFC 7239 6.3 obfuscated identifiers, 6 ports ("_" for an obfuscated one).
_OBFUSCATED = re.compile(r"_[A-Za-z0-9._-]+")
_PORT = re.compile(r"[0-9]{1,5}")
# NOTE: a proxy may say ws/wss for a WebSocket; only whether it was secure matters.
_SECURE = {"http": False, "ws": False, "https": True, "wss": True}
# NOTE: (secure, websocket) -> the scheme the request gets.
_SCHEME = {(False, False): "http", (True, False): "https", (False, True): "ws", (True, True): "wss"}
# NOTE: the longest value (lines joined) read from a trusted proxy: nginx and Gunicorn refuse
# a header line past 8 KiB, and a chain of real proxies writes a few hundred characters. The
# values are parsed, and their hops walked, in Python: 256 KiB of them (one head under
# Waitress's cap) took 0.2-0.6 s, 8 KiB takes 16 ms at most.
MAX_VALUE_SIZE = 8192
# NOTE: the most trusted hops walked to find the client; a chain of real proxies has a few.
# Each hop is parsed by ipaddress (about 6 us): 8 KiB of trusted hops, the cap above, took
# 3.6-4.9 ms of CPU a request (hostile140); 64 take about 0.4 ms.
MAX_HOPS = 64
# SPEC: RFC 4291 2.5.5.2, the IPv4-mapped IPv6 addresses.
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_EVERY_IPV4 = ipaddress.IPv4Network("0.0.0.0/0")


class _Forwarding(NamedTuple):
    """What the proxies said, checked: ``client`` is ``None`` when it is unknown."""

    has_client: bool
    client: Client | None
    secure: bool | None
    host: str | None


def _networks(trusted: Iterable[str]) -> tuple[bool, tuple[Network, ...]]:
    if isinstance(trusted, str):
        raise TypeError(f"trusted takes a list of addresses, not one string: [{trusted!r}]")
    given = list(trusted)
    for entry in given:
        if not isinstance(entry, str):
            # NOTE: [os.environ.get("PROXY")] or an ipaddress network was an AttributeError.
            raise TypeError(f"trusted takes addresses and ranges as str, not {entry!r}")
    entries = [entry.strip() for entry in given]
    networks = []
    for entry in entries:
        if entry == "*":
            continue
        try:
            network = ipaddress.ip_network(entry)
        except ValueError as exc:
            raise ValueError(
                f"trusted proxy {entry!r} is not an address or a range: {exc}"
            ) from None
        networks.append(_unmapped(network))
        if isinstance(network, ipaddress.IPv6Network) and network.supernet_of(_MAPPED):
            # NOTE: "::/0" (every IPv6 address) holds the mapped block, whose peers are
            # compared as IPv4: it trusted none of them (review139's note).
            networks.append(_EVERY_IPV4)
    return "*" in entries, tuple(networks)


def _unmapped(network: Network) -> Network:
    """A range of IPv4 addresses written as IPv6 (``::ffff:10.0.0.0/104``) as IPv4."""
    # NOTE: peers and hops in that block are compared as IPv4 (_trusts, parse_node): an entry
    # copied from a dual-stack server's log ("::ffff:10.0.0.1") trusted nobody (review139).
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None  # NOTE: for mypy; every address of _MAPPED maps.
        return ipaddress.IPv4Network((mapped, network.prefixlen - _MAPPED.prefixlen))
    return network


def _joined(headers: Headers, name: str, header: str) -> str:
    """Every line of the list header ``name``, joined with commas.

    Raises:
        HTTPError: 431 for a value longer than ``MAX_VALUE_SIZE``.
    """
    joined = header_value(headers, name) or ""
    if len(joined) > MAX_VALUE_SIZE:
        # SPEC: RFC 6585 5, 431 for a single header field that is too large.
        raise HTTPError(
            431, f"{header} header from a trusted proxy is longer than {MAX_VALUE_SIZE} characters"
        )
    return joined


def _items(headers: Headers, name: str, header: str) -> list[str]:
    # SPEC: RFC 9110 5.6.1, empty items are skipped.
    return [item.strip() for item in _joined(headers, name, header).split(",") if item.strip()]


def _skip_ows(value: str, position: int) -> int:
    found = _OWS.match(value, position)
    return position if found is None else found.end()


def parse_forwarded(value: str) -> list[dict[str, str]]:
    """Split a ``Forwarded`` value into its elements: one dict of parameters per proxy.

    Parameter names are lower-cased; quoted values are unquoted. Empty elements are skipped.

    Raises:
        ValueError: If the value does not follow RFC 7239's syntax, or repeats a parameter
            within one element.
    """
    elements: list[dict[str, str]] = []
    element: dict[str, str] = {}
    position = _skip_ows(value, 0)
    while position < len(value):
        pair = _PAIR.match(value, position)
        if pair is not None:
            name, raw = pair.group(1).lower(), pair.group(2)
            if name in element:
                raise ValueError(f"{name}= given twice in one element")
            element[name] = _QUOTED_PAIR.sub(r"\1", raw[1:-1]) if raw[0] == '"' else raw
            position = _skip_ows(value, pair.end())
        if position == len(value):
            break
        if value[position] not in ",;":
            raise ValueError(f"unexpected {value[position]!r} at {position}")
        if value[position] == "," and element:
            elements.append(element)
            element = {}
        position = _skip_ows(value, position + 1)
    if element:
        elements.append(element)
    return elements


def parse_node(node: str) -> Client | None:
    """Parse a proxy's ``for`` value: ``ip``, ``ip:port``, ``[ipv6]:port``, ``unknown``, ``_id``
    (the last two with a port or without).

    Returns:
        ``(host, port)`` with the address in its normal form and port 0 when none (or an
        obfuscated one) is given; ``None`` for an unknown or obfuscated address.

    Raises:
        ValueError: If it is none of these.
    """
    name, colon, port = node.partition(":")
    if name.lower() == "unknown" or _OBFUSCATED.fullmatch(name):
        # SPEC: RFC 7239 6, node = nodename [":" node-port]: an unknown or obfuscated name
        # may have a port ("unknown:4711", "_gazonk:_p"), which was answered with 400.
        if colon:
            _port(colon + port)
        return None
    if "%" in node:
        # NOTE: ipaddress keeps an IPv6 zone of any text ("fe80::1%<img ...>") in the address,
        # which would become request.client.host; RFC 7239 nodes have none (RFC 3986
        # IPv6address), and a zone means nothing outside the proxy's own host.
        raise ValueError("an IPv6 zone is not a client address")
    if node.startswith("["):
        address, bracket, port = node[1:].partition("]")
        if not bracket:
            raise ValueError("no ] after an IPv6 address")
        return _normal(ipaddress.IPv6Address(address)), _port(port)
    try:
        return _normal(ipaddress.ip_address(node)), 0  # NOTE: X-Forwarded-For has bare IPv6.
    except ValueError:
        address, _, port = node.rpartition(":")
        return str(ipaddress.IPv4Address(address)), _port(":" + port)


def _normal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The address as text; an IPv4 one that a dual-stack proxy wrote as IPv6, as IPv4."""
    # NOTE: one client, one text: "::ffff:203.0.113.5" was "::ffff:cb00:7105" on Python 3.11
    # and 3.12, and "::ffff:203.0.113.5" on 3.13, never the "203.0.113.5" that the same client
    # got through an IPv4 socket, which rate limits and logs key on (hostile137).
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _port(text: str) -> int:
    if not text:
        return 0
    digits = text[1:]
    if text[0] == ":" and _OBFUSCATED.fullmatch(digits):
        return 0
    if text[0] != ":" or not _PORT.fullmatch(digits) or int(digits) > 65535:
        raise ValueError(f"not a port: {text!r}")
    return int(digits)


def _pick(values: Sequence[str], index: int | None, hops: int) -> str | None:
    # NOTE: one value per hop: the chosen hop's; otherwise the right-most, set by the nearest
    # proxy (nginx's proxy_set_header replaces the header with one value).
    if not values:
        return None
    if index is not None and len(values) == hops:
        return values[index]
    return values[-1]


def _malformed(header: str) -> HTTPError:
    return HTTPError(400, f"malformed {header} header from a trusted proxy")


def _secure(proto: str | None, header: str) -> bool | None:
    if proto is None:
        return None
    secure = _SECURE.get(proto.lower())
    if secure is None:
        raise _malformed(header)
    return secure


def _host(host: str | None, header: str) -> str | None:
    # NOTE: the rule of the Host header: no userinfo, path, query, fragment or space can get
    # into request.url through it.
    if host is not None and not valid_host(host):
        raise _malformed(header)
    return host


class ProxyHeaders:
    """Take the client's address, scheme and host from the headers of trusted proxies.

    Only when the direct peer (``request.client``) is trusted, the plugin reads the headers
    your proxies write: ``X-Forwarded-For``, ``X-Forwarded-Proto`` and ``X-Forwarded-Host``, or
    with ``forwarded=True`` RFC 7239's ``Forwarded``; never both, since a proxy that writes one
    family passes the other on from the client. It walks the hops from the right, skipping
    trusted addresses: the first untrusted hop is the client (the left-most one when all are
    trusted). It then sets ``request.client``, ``request.scheme`` and ``request.host`` (hence
    ``request.url``).

    Its flow is the outermost, wherever the plugin is installed, so every other flow sees the
    corrected request. A malformed value from a trusted proxy is answered with 400, one longer
    than 8192 characters (``MAX_VALUE_SIZE``), or whose client is more than 64 trusted hops
    away (``MAX_HOPS``), with 431, each logged at ``INFO`` on the
    ``microweb.proxy`` logger. With nobody trusted the plugin adds no flow and changes nothing.

    Args:
        trusted: Addresses and CIDR ranges of the proxies in front of the app, IPv4 or IPv6
            (``"127.0.0.1"``, ``"10.0.0.0/8"``, ``"::1"``); ``"*"`` trusts every peer.
        forwarded: Read ``Forwarded`` instead of ``X-Forwarded-*`` (for proxies that write
            RFC 7239's header, which nginx, HAProxy, Caddy, Traefik and most load balancers
            don't by default).

    Raises:
        TypeError: If ``trusted`` is one string instead of a list, or holds something else
            than strings.
        ValueError: If an entry is not an address or a range (or has host bits set).
    """

    name = "proxy_headers"

    def __init__(self, trusted: Iterable[str] = (), *, forwarded: bool = False) -> None:
        self.trust_all, self.networks = _networks(trusted)
        self.forwarded = forwarded
        # PERF: checking an address costs about 5 us, a cached answer 0.3 us; the peer is
        # nearly always one of a few proxies.
        self._cached_trusts = functools.lru_cache(maxsize=1024)(self._trusts)

    def setup(self, app: App) -> None:
        """Add the flow, outside every other flow, wherever they were registered."""
        if self.trust_all or self.networks:
            app._pin_outermost(self.flow)

    def trusts(self, host: str) -> bool:
        """Tell whether the address ``host`` is a trusted proxy."""
        return self._cached_trusts(host)

    def _trusts(self, host: str) -> bool:
        if self.trust_all:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # NOTE: a dual-stack socket's view of an IPv4 peer.
        return any(address in network for network in self.networks)

    def flow(self, request: Request) -> Flow:
        """Correct the request on the way in; a refusal is logged on ``microweb.proxy``."""
        try:
            self.rewrite(request)
        except HTTPError as refusal:
            # NOTE: the 400 said nothing in the log but its status, and it is the operator's
            # to look into: a proxy's setting, or a client's value that a proxy passed on.
            # INFO, as CSRF's refusals: any client can make a proxy pass a bad value on.
            peer = request.client
            logger.info(
                "refused %s %s from proxy %s: %s",
                logged_method(request),
                logged_path(request, whole=True),
                "(no address)" if peer is None else peer.host,
                refusal.detail,
            )
            raise
        yield None

    def rewrite(self, request: Request) -> None:
        """Set the client, scheme and host of ``request`` from its trusted proxies' headers.

        Raises:
            HTTPError: 400 for a malformed value from a trusted proxy, 431 for one longer than
                ``MAX_VALUE_SIZE``.
        """
        peer = request.client
        # NOTE: no peer address (a Unix socket) is trusted only by "*".
        if not self.trusts("" if peer is None else peer.host):
            return
        # NOTE: one family only. nginx's usual lines set X-Forwarded-* and pass a client's own
        # Forwarded on: read whenever present, it let any client choose its address (proxy63).
        if self.forwarded:
            found = self._from_forwarded(request.headers)
        else:
            found = self._from_x_forwarded(request.headers)
        if found is None:
            return
        if found.has_client:
            request.client = found.client
        if found.secure is not None:
            # NOTE: a WebSocket handshake keeps a WebSocket scheme.
            request.scheme = _SCHEME[found.secure, request.scheme in ("ws", "wss")]
        if found.host is not None:
            # NOTE: checked by _host() already: set without the setter's valid_host() again.
            request._set_host(found.host)

    def _client_hop(self, nodes: Sequence[str | None], header: str) -> tuple[int, Client | None]:
        """Walk the ``for`` values from the right; return the client's index and address.

        Raises:
            HTTPError: 400 for a malformed value on the way, 431 past ``MAX_HOPS`` trusted
                hops.
        """
        index = last = len(nodes) - 1
        while True:
            node = nodes[index]
            try:
                client = None if node is None else parse_node(node)
            except ValueError:
                raise _malformed(header) from None
            if client is None or index == 0 or not self.trusts(client[0]):
                return index, client
            if last - index + 1 >= MAX_HOPS:
                raise HTTPError(
                    431, f"{header} header from a trusted proxy has more than {MAX_HOPS} hops"
                )
            index -= 1

    def _from_forwarded(self, headers: Headers) -> _Forwarding | None:
        """Read ``Forwarded``: the chosen element gives the client, proto and host."""
        joined = _joined(headers, "forwarded", "Forwarded")
        try:
            elements = parse_forwarded(joined)
        except ValueError:
            raise _malformed("Forwarded") from None
        if not elements:
            return None
        index, client = self._client_hop([e.get("for") for e in elements], "Forwarded")
        chosen = elements[index]
        secure = _secure(chosen.get("proto"), "Forwarded")
        return _Forwarding(True, client, secure, _host(chosen.get("host"), "Forwarded"))

    def _from_x_forwarded(self, headers: Headers) -> _Forwarding | None:
        """Read ``X-Forwarded-For``, ``-Proto`` and ``-Host`` (see ``_pick`` for lists)."""
        nodes = _items(headers, "x-forwarded-for", "X-Forwarded-For")
        protos = _items(headers, "x-forwarded-proto", "X-Forwarded-Proto")
        hosts = _items(headers, "x-forwarded-host", "X-Forwarded-Host")
        if not (nodes or protos or hosts):
            return None
        index, client = None, None
        if nodes:
            index, client = self._client_hop(nodes, "X-Forwarded-For")
        secure = _secure(_pick(protos, index, len(nodes)), "X-Forwarded-Proto")
        host = _host(_pick(hosts, index, len(nodes)), "X-Forwarded-Host")
        return _Forwarding(bool(nodes), client, secure, host)
