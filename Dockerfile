# Emotion bot: runs `python -m bot` with the shipped model. Only TELEGRAM_BOT_TOKEN is needed.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY classifier classifier
COPY bot bot
COPY training training
# The bot's run-time dependencies only: training extras (TensorFlow) stay out of the image.
RUN /venv/bin/pip install --no-cache-dir .

FROM python:3.11-slim
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MODEL_PATH=/app/models/emotion.onnx \
    HEARTBEAT_FILE=/tmp/emotion-bot.heartbeat
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin bot
COPY --from=build /venv /venv
COPY models/emotion.onnx models/emotion.json /app/models/
WORKDIR /app
USER 10001
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["python", "-m", "bot.healthcheck"]
ENTRYPOINT ["python", "-m", "bot"]
