"""The [pop3] keys: defaults and the errors a wrong file gets."""

from __future__ import annotations

import pytest

from listmgr.config import ConfigError, from_mapping


def test_defaults():
    c = from_mapping({}).pop3
    assert (c.listen, c.relay_window, c.timeout, c.login_failure_delay) == \
        ("127.0.0.1:1110", 1800.0, 600.0, 2.0)
    assert (c.tls_cert, c.tls_listen, c.require_tls, c.max_connections) == \
        ("", "127.0.0.1:1995", False, 100)


def test_values_are_parsed():
    c = from_mapping({"pop3": {"relay_window": "2s", "timeout": "15m",
                               "login_failure_delay": "0.5s", "tls_listen": "[::1]:995"}}).pop3
    assert (c.relay_window, c.timeout, c.login_failure_delay, c.tls_listen) == \
        (2.0, 900.0, 0.5, "[::1]:995")


@pytest.mark.parametrize("section,text", [
    ({"tls_cert": "/x.pem"}, "'pop3.tls_cert' and 'pop3.tls_key' go together"),
    ({"require_tls": True}, "'pop3.require_tls' needs"),
    ({"timeout": "soon"}, "bad value 'soon' for 'pop3.timeout'"),
    ({"tls_listen": "995"}, "bad value '995' for 'pop3.tls_listen'"),
    ({"apop": True}, "unknown key 'pop3.apop'"),
])
def test_errors_name_the_key(section, text):
    with pytest.raises(ConfigError, match=text.replace("[", r"\[").replace("(", r"\(")):
        from_mapping({"pop3": section}, "site.toml")
