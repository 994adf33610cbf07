# ratecast serving image: serves the run folder mounted at /run on port 8000.
#   docker build -t ratecast .
#   docker run -p 8000:8000 -v $PWD/runs/hybrid:/run:ro ratecast
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 KERAS_BACKEND=jax
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install .
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready')"
ENTRYPOINT ["ratecast", "serve", "/run", "--host", "0.0.0.0", "--port", "8000"]
CMD ["--workers", "1"]
