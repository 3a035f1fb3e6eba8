"""The runtime's connection to the cluster its backend runs on: made in one place, closed with the runtime.

A backend that runs on a cluster (``needs_cluster``: ray) needs this process connected before its
workers start. ``Runtime(...)`` connects when it starts, ``Runtime.from_profile(...)`` at once (its
cluster check needs the cluster); both through :class:`ClusterLink`, and the runtime closes the
link on ``close()`` — which disconnects, and stops a ``local`` head with every process it started.
A connection the caller made first (``ray.init``) is used as it is and left open.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from tuner.errors import ConfigError

if TYPE_CHECKING:
    from tuner.deployment import Deployment
    from tuner.profile import ScalingProfile

__all__ = ["ClusterLink", "address_for", "link_for"]

#: what a runtime built without ``ray_address`` connects to: the cluster this machine belongs to
DEFAULT_ADDRESS = "auto"


class ClusterLink:
    """One connection to a cluster, made by :meth:`connect` (once while it lasts), ended by :meth:`close`."""

    def __init__(self, address: str) -> None:
        from tuner.cluster import address_kind

        address_kind(address)  # a malformed address is one line now, not when the runtime starts
        self.address = address
        self._conn: Any = None
        self._lock = threading.Lock()

    def connect(self) -> Any:
        """The connection (:class:`tuner.cluster.Connection`), made the first time; idempotent."""
        from tuner.cluster import connect

        with self._lock:
            if self._conn is None:
                self._conn = connect(self.address)
            return self._conn

    def close(self) -> None:
        """Disconnect (a ``local`` head goes with it); a no-op if not connected; idempotent."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def link_for(settings: Deployment, address: str | None) -> ClusterLink | None:
    """The link a runtime of ``settings`` needs: None for a backend that runs on no cluster (then
    ``address`` must be None), else one to ``address`` (default: :data:`DEFAULT_ADDRESS`)."""
    if not settings.kind.needs_cluster:
        if address is not None:
            from tuner.backends import names

            raise ConfigError(
                f"ray_address={address!r}: the {settings.backend} backend runs on no cluster "
                f"(ray_address is for {', '.join(names(where='needs_cluster'))})"
            )
        return None
    return ClusterLink(address if address is not None else DEFAULT_ADDRESS)


def address_for(name: str, profile: ScalingProfile, address: str | None) -> str:
    """Where a profile's cluster is: ``address``, else the kind the profile records (RAY_ADDRESS for
    one measured through Ray Client, whose address a profile never records)."""
    if address is not None:
        return address
    kind = profile.cluster.address if profile.cluster is not None else DEFAULT_ADDRESS
    if kind != "client":
        return kind
    address = os.environ.get("RAY_ADDRESS")
    if not address:
        raise ConfigError(
            f"{name}: measured through Ray Client (ray://); give the address again "
            "(ray_address=, --ray-address or RAY_ADDRESS)"
        )
    return address
