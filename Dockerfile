FROM python:3.11-slim
# The compiled fan-out builds during pip install: it needs a compiler and OpenSSL's headers.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY litesfu litesfu
COPY sfu sfu
COPY signaling signaling
COPY bench bench
COPY web web
RUN pip install --no-cache-dir .
ENV SFU_HTTP_HOST=0.0.0.0 SFU_WEB_ROOT=/app/web
EXPOSE 8080/tcp 8000/udp
CMD ["litesfu"]
