"""The Ray Serve application: thin deployments around the core stages and a FastAPI ingress.

``serve run deployments/local.yaml`` or ``visearch serve`` starts it; :func:`serve_app.app.build_app`
is the builder both use. Importing this package starts nothing.
"""
