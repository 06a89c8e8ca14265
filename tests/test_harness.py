import socket

import pytest
from pytest_socket import SocketBlockedError, SocketConnectBlockedError


def test_outbound_network_is_blocked():
    with pytest.raises((SocketBlockedError, SocketConnectBlockedError)):
        socket.create_connection(("203.0.113.1", 443), timeout=1)


def test_loopback_is_allowed():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname(), timeout=1)
    client.close()
    server.close()
