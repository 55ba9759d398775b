# One image for every role: runaway-monitor serve | detector | worker.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY workers ./workers
COPY detectors ./detectors
COPY monitor ./monitor
RUN pip install . && useradd --system --uid 10001 runaway
USER 10001
EXPOSE 8321 9101 9102
ENTRYPOINT ["runaway-monitor"]
CMD ["serve", "--host", "0.0.0.0"]
