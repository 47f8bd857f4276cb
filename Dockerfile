# syntax=docker/dockerfile:1
# Build stage: wheels for the project and its locked dependencies.
FROM python:3.11-slim AS build
WORKDIR /src
RUN pip install --no-cache-dir --upgrade pip
COPY pyproject.toml requirements.lock README.md tgcast_cli.py ./
COPY api api
COPY core core
COPY db db
COPY handlers handlers
COPY jobs jobs
COPY legacy legacy
COPY worker worker
COPY sandbox sandbox
COPY services services
COPY userbot userbot
COPY devtools devtools
RUN pip wheel --no-cache-dir --wheel-dir /wheels -c requirements.lock .

# Runtime stage: only the wheels, run as an unprivileged user.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 LOG_FORMAT=json
RUN useradd --create-home --uid 10001 tgcast
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/* && rm -rf /wheels
USER tgcast
WORKDIR /home/tgcast
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health').status == 200 else 1)"
CMD ["tgcast", "web", "--host", "0.0.0.0", "--port", "8000"]
