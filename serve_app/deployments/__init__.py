"""One deployment per model; each is a thin class around one core object."""

from serve_app.deployments.detector import DetectorDeployment
from serve_app.deployments.embedder import EmbedderDeployment
from serve_app.deployments.ocr import OcrDeployment
from serve_app.deployments.search import SearchDeployment

__all__ = ["DetectorDeployment", "EmbedderDeployment", "OcrDeployment", "SearchDeployment"]
