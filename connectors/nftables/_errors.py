"""The nftables responder's errors, all ``ResponderError`` so the executor records them as failures.

::

    ResponderError                  (connectors.base)
     └── NftablesError              a command was refused; carries nft's own message
          └── NftablesUnavailable   nft / libnftables missing, no privileges, or no such netns
"""

from __future__ import annotations

from connectors.base import ResponderError


class NftablesError(ResponderError):
    """nft refused a command; the message holds nft's diagnostic."""


class NftablesUnavailable(NftablesError):
    """nftables cannot be driven here at all: missing tooling, privileges or namespace."""
