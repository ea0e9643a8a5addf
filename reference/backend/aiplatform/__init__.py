"""The AI platform's reference backend: FastAPI on PostgreSQL under Row Level Security."""

__version__ = "0.2.0"
