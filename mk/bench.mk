# mk/bench.mk - benchmarks (not tests): `make bench` prints one table of
# throughput, latency, rebuild/verify rates and memory, each beside the limit
# measured in the same run; `make bench-smoke` runs every row on a few thousand
# commands in seconds (no broker). See docs/performance.md. Included by the
# main Makefile; settings from the environment (BENCH_*, KAFKA_PORT).

BENCH_BINS := $(BUILD)/bench/bench-gen $(BUILD)/bench/bench-json-limit \
              $(BUILD)/bench/bench-lmdb-limit $(BUILD)/bench/bench-jsonl2mp \
              $(BUILD)/bench/bench-kafka-limit $(BUILD)/bench/bench-json-check \
              $(BUILD)/bench/bench-kafka-echo

.PHONY: bench bench-smoke bench-bins

bench-bins: $(BENCH_BINS) $(BINS)

$(BUILD)/bench/bench-gen: $(BUILD)/bench/gen.o
	$(CC) $(FINAL_LDFLAGS) $^ -o $@

$(BUILD)/bench/bench-json-limit: $(BUILD)/bench/json_limit.o $(LIB)
	$(CC) $(FINAL_LDFLAGS) $^ $(FINAL_LIBS) -o $@

$(BUILD)/bench/bench-lmdb-limit: $(BUILD)/bench/lmdb_limit.o $(LIB)
	$(CC) $(FINAL_LDFLAGS) $^ $(FINAL_LIBS) -o $@

$(BUILD)/bench/bench-jsonl2mp: $(BUILD)/bench/jsonl2mp.o $(LIB)
	$(CC) $(FINAL_LDFLAGS) $^ $(FINAL_LIBS) -o $@

$(BUILD)/bench/bench-kafka-limit: $(BUILD)/bench/kafka_limit.o $(LIB)
	$(CC) $(FINAL_LDFLAGS) $^ $(FINAL_LIBS) -o $@

$(BUILD)/bench/bench-json-check: $(BUILD)/bench/json_check.o $(LIB)
	$(CC) $(FINAL_LDFLAGS) $^ $(FINAL_LIBS) -o $@

$(BUILD)/bench/bench-kafka-echo: $(BUILD)/bench/kafka_echo.o $(LIB)
	$(CC) $(FINAL_LDFLAGS) $^ $(FINAL_LIBS) -o $@

bench: bench-bins
	MARKETD_BUILD=$(BUILD) bash bench/run.sh

bench-smoke: bench-bins
	MARKETD_BUILD=$(BUILD) BENCH_SMOKE=1 bash bench/run.sh

# tests/unit/bench_smoke.sh (run by `make unit`) needs the bench programs.
unit: $(BENCH_BINS)
