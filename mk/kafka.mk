# mk/kafka.mk — local Apache Kafka broker (KRaft, single node) for the
# integration tests; included by the main Makefile. All logic lives in
# scripts/kafka.sh; settings come from the environment (KAFKA_PORT,
# KAFKA_DIR, MARKETD_CACHE, KAFKA_VERSION, ...), e.g.
#   make kafka-up KAFKA_PORT=19092
# (make exports command-line variables to the script's environment).

# Path relative to this fragment, so `make -C` / out-of-tree includes work too.
KAFKA_SH := bash $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))/../scripts/kafka.sh

.PHONY: kafka-fetch kafka-up kafka-down kafka-status

# Download the broker jars with mvn into ~/.cache/marketd (no-op when cached).
kafka-fetch:
	$(KAFKA_SH) fetch

# Start the broker on 127.0.0.1:9092 (KAFKA_PORT); no-op when it runs.
kafka-up:
	$(KAFKA_SH) up

# Stop the broker and delete its data dir; fine when nothing runs.
kafka-down:
	$(KAFKA_SH) down

# Informational: never fails the make run.
kafka-status:
	@$(KAFKA_SH) status || true
