"""The toolkit every API view builds on; the viewsets themselves live in their apps.

- ``views``: ``ClubScopedViewSet`` (the club from the path, payload parsing, one retried
  transaction per write) and the OpenAPI schema of the errors;
- ``authentication``, ``permissions``, ``throttling``: tokens or staff sessions, permits,
  the per-token rate limit;
- ``query``, ``filters``, ``pagination``: the query string's wire format, the FilterSets
  read through it, pages and sorting;
- ``fields``: strict JSON payload fields, and what PostgreSQL cannot store;
- ``renderers``, ``error_responses``: JSON only, and every error body written one way.
"""
