"""Webhooks: the membership events of a club posted to the endpoints it registers.

- ``models``: endpoints and deliveries (tables of the groups app, see ``models``);
- ``receivers``: deliveries made as ``groups.ledger`` records the events;
- ``sending``: signed posts with retries, leases, resending and pruning;
- ``outbound``: the fence every outgoing request passes (no private addresses);
- ``tasks`` and the ``send_webhooks`` command: the two ways deliveries are sent;
- ``admin``: endpoints registered by club staff, deliveries read and resent.

An installed app of its own (label ``webhooks``), so that Django finds its command, admin
and receivers; it depends on groups, never the other way round.
"""
