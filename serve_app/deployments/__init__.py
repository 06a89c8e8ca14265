"""One deployment per model, and the shared sessions; each is a thin class around one core object."""

from serve_app.deployments.detector import DetectorDeployment
from serve_app.deployments.embedder import EmbedderDeployment
from serve_app.deployments.ocr import OcrDeployment
from serve_app.deployments.search import SearchDeployment
from serve_app.deployments.sessions import SessionsDeployment

__all__ = ["DetectorDeployment", "EmbedderDeployment", "OcrDeployment", "SearchDeployment", "SessionsDeployment"]
