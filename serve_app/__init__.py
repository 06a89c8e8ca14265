"""The Ray Serve application: thin deployments around the core stages and a FastAPI ingress.

``serve run deployments/local.yaml`` or ``visearch serve`` starts it; :func:`serve_app.app.build_app`
is the builder both use.
"""

__all__ = ["build_app"]


def build_app(args: dict | None = None):  # noqa: ANN201 - lazy: importing serve_app must not start Ray
    from serve_app.app import build_app as _build

    return _build(args or {})
