#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Check from a board that every peer's address answers."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: edge_reachable
short_description: Check that peers answer on their mesh address.
description:
  - Opens a TCP connection from the board to each target's I(host) and I(port). A target that
    accepts or actively refuses (the peer's broker may not run yet) is reachable; a target that
    does not answer within I(timeout) seconds, or has no route, is not.
  - Never changes anything.
options:
  targets:
    description: Peers to probe, as a mapping of name to C(host:port).
    type: dict
    required: true
  timeout:
    description: Seconds to wait for each peer.
    type: float
    default: 3.0
"""

RETURN = r"""
unreachable:
  description: One line per peer that did not answer, naming it and the reason.
  returned: always
  type: list
"""

import errno
import socket

from ansible.module_utils.basic import AnsibleModule

ANSWERED = {0, errno.ECONNREFUSED, errno.ECONNRESET}


def probe(host, port, timeout):
    """None when host answers on port (accepting or refusing), else the reason it does not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        return "cannot resolve %s: %s" % (host, err.strerror)
    reason = "no address"
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.settimeout(timeout)
            try:
                code = sock.connect_ex(address)
            except socket.timeout:
                code = errno.ETIMEDOUT
            except OSError as err:
                code = err.errno or errno.EHOSTUNREACH
        if code in ANSWERED:
            return None
        reason = "no answer within %.0f s" % timeout if code in (errno.ETIMEDOUT, errno.EAGAIN) \
            else errno.errorcode.get(code, str(code))
    return reason


def main():
    module = AnsibleModule(
        argument_spec=dict(
            targets=dict(type="dict", required=True),
            timeout=dict(type="float", default=3.0),
        ),
        supports_check_mode=True,
    )
    unreachable = []
    for name, endpoint in sorted(module.params["targets"].items()):
        host, _, port = str(endpoint).rpartition(":")
        if not host or not port.isdigit():
            module.fail_json(msg="peer %s: %r is not HOST:PORT" % (name, endpoint))
        reason = probe(host.strip("[]"), int(port), module.params["timeout"])
        if reason:
            unreachable.append("%s at %s: %s" % (name, endpoint, reason))
    if unreachable:
        module.fail_json(msg="peers not reachable: " + "; ".join(unreachable), unreachable=unreachable)
    module.exit_json(changed=False, unreachable=[])


if __name__ == "__main__":
    main()
