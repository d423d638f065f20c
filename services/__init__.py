"""HTTP serving for tsdiff: a BentoML service that delegates every computation to the library.

``tsdiff.services.service:TSDiffService`` is the entry point (``tsdiff serve`` or
``bentoml serve tsdiff.services.service:TSDiffService``); the other modules hold what the
service needs around the library: settings from the environment, request parsing,
and an ASGI guard for authentication and request limits.
"""
