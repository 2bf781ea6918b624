"""The shared libnftables binding's pure parts: which set an address is filed in, and expiry parsing.

The context itself (``LibNft``) is exercised against the kernel in network namespaces by
``tests/connectors/test_nftables*.py`` and ``tests/soc_agent/edge/test_edge_netns.py``.
"""

import pytest

from soc_agent.libnft import address_set, element_expiry


@pytest.mark.parametrize("ip, expected", [
    ("203.0.113.7", ("203.0.113.7", "blocked_v4")),
    ("2001:DB8::0:1", ("2001:db8::1", "blocked_v6")),
    ("::ffff:198.51.100.9", ("198.51.100.9", "blocked_v4")),
])
def test_an_address_is_normalised_and_filed_in_its_family_set(ip, expected):
    assert address_set(ip) == expected


@pytest.mark.parametrize("ip, message", [
    ("fe80::1%eth0", "scoped address"),
    ("10.0.0.0/8", "is not an IP address"),
    ("203.0.113.7; flush ruleset", "is not an IP address"),
    ("", "is not an IP address"),
])
def test_anything_but_one_address_is_refused(ip, message):
    with pytest.raises(ValueError, match=message):
        address_set(ip)


def test_expiry_is_read_from_get_element_output_and_minus_one_means_no_timeout():
    out = "table inet soc_agent {\n set blocked_v4 {\n elements = { 203.0.113.7 timeout 300s expires 287s }\n }\n}"
    assert element_expiry(out) == 287
    assert element_expiry("elements = { 203.0.113.7 }") == -1
