FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY litesfu litesfu
COPY sfu sfu
COPY signaling signaling
COPY bench bench
COPY web web
RUN pip install --no-cache-dir .
ENV SFU_HTTP_HOST=0.0.0.0 SFU_WEB_ROOT=/app/web
EXPOSE 8080/tcp 8000/udp
CMD ["litesfu"]
