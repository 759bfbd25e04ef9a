"""The toolkit every API view builds on; the viewsets themselves live in their apps.

- ``views``: ``ClubScopedViewSet`` (the club from the path, payload parsing, one retried
  transaction per write);
- ``openapi``, ``components``: what the schema says beyond the serializers (path ids, query
  parameters, pages, every error with its body and an example), and the components
  declared in code (conditions, enums, filters);
- ``authentication``, ``permissions``, ``throttling``: tokens or staff sessions, permits,
  the per-token rate limit;
- ``query``, ``filters``, ``pagination``: the query string's wire format, the FilterSets
  read through it, pages and sorting;
- ``fields``: strict JSON payload fields, and what PostgreSQL cannot store;
- ``renderers``, ``error_responses``: JSON only, and every error body written one way.
"""
