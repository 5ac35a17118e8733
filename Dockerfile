# sweeper: one image for the worker, the dashboard and the CLI (docker-compose.yml; docs/scale.md).
#   docker build -t sweeper .                              # CPU (jax on CPU)
#   docker build -t sweeper:gpu --build-arg JAX=cuda12 .    # NVIDIA GPUs (jax[cuda12])
FROM python:3.11-slim
ARG JAX=""
ENV PYTHONUNBUFFERED=1 SWEEPER_COMPILEDIR=/cache/pytensor SWEEPER_DATA_DIR=/data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY storage storage
COPY sweeper sweeper
COPY workers workers
COPY studies studies
RUN pip install --no-cache-dir . && if [ -n "$JAX" ]; then pip install --no-cache-dir "jax[$JAX]"; fi
RUN useradd --create-home sweeper && mkdir -p /cache /data && chown sweeper /cache /data
USER sweeper
ENTRYPOINT ["sweeper"]
CMD ["--help"]
