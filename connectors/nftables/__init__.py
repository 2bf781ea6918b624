"""nftables responder: ``firewall.block`` as kernel-expiring set elements, optionally in a netns.

Needs the Debian package ``nftables`` (``nft``, and ``libnftables1`` for the fast in-process mode)
and CAP_NET_ADMIN (plus CAP_SYS_ADMIN to enter a network namespace).
"""

from connectors.nftables._errors import NftablesError, NftablesUnavailable
from connectors.nftables.responder import NftablesResponder

__all__ = ["NftablesError", "NftablesResponder", "NftablesUnavailable"]
