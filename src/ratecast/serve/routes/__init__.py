"""The API's endpoints, one router per concern; :func:`ratecast.serve.app.create_app` includes them all.

Endpoint functions have no docstrings on purpose: FastAPI would publish one as the operation's description. What the
API documents is given in each route's ``summary`` and ``description``."""
