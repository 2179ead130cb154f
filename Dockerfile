# The rollout-lake image: the ingestion worker by default; the trainer image adds EXTRAS=train.
#   docker build -t rollout-lake .                        # worker
#   docker build --build-arg EXTRAS=train -t rollout-lake-train .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY . .

ARG EXTRAS=""
# constraints.txt keeps click<8.4 for faust-streaming when the train extra pulls newer tools.
RUN pip install -c constraints.txt ".${EXTRAS:+[$EXTRAS]}"

ENV KAFKA_BOOTSTRAP_SERVERS=kafka:9092 \
    ROLLOUT_TOPIC=rollout-events \
    LAKE_URI=/lake

CMD ["faust", "-A", "streams.worker.app", "worker", "-l", "info"]
