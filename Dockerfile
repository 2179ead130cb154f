# The rollout-lake image: the ingestion worker and the lake CLI by default (EXTRAS=worker, which
# includes the lake extra); the trainer image installs EXTRAS=train instead.
#   docker build -t rollout-lake .                        # worker + `python -m lake`
#   docker build --build-arg EXTRAS=train -t rollout-lake-train .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY . .

ARG EXTRAS="worker"
# constraints.txt keeps click<8.4 for faust-streaming when the train extra pulls newer tools.
RUN pip install -c constraints.txt ".${EXTRAS:+[$EXTRAS]}"

ENV KAFKA_BOOTSTRAP_SERVERS=kafka:9092 \
    ROLLOUT_TOPIC=rollout-events \
    LAKE_URI=/lake

CMD ["faust", "-A", "streams.worker.app", "worker", "-l", "info"]
