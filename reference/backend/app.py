"""PM2 starts ``uvicorn app:app`` from this folder; the application lives in aiplatform/."""

from aiplatform.main import app  # noqa: F401
