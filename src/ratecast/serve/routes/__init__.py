"""The API's endpoints, one router per concern; :func:`ratecast.serve.app.create_app` includes them all."""
