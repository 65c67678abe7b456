# mk/fuzz.mk - libFuzzer targets (tests/fuzz/), built with clang apart from the
# gcc build: the library sources they need are compiled again into
# build/fuzz/ with -fsanitize=fuzzer-no-link,address,undefined.
#
#   make fuzz                      each target for FUZZ_SECONDS (default 60)
#   make fuzz FUZZ_SECONDS=15      what CI runs (.ci/run)
#   make fuzz-build                only build build/fuzz/fuzz_<target>
#   make fuzz-replay               run each target over its corpus and the
#                                  saved regressions once, without fuzzing
#
# Seeds are committed in tests/fuzz/corpus/<target>/; what a run discovers goes
# to build/fuzz/corpus/<target>/ (not committed). A crash is saved as
# build/fuzz/crash-<target>-*; copy it to tests/fuzz/regressions/<target>/ so
# that the replay suite (tests/test_hostile_fuzz.c, part of `make unit`)
# keeps checking it.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_DIR     := build/fuzz
FUZZ_TARGETS := json msgpack event engine record
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS  := -g -O1 -fno-omit-frame-pointer $(FUZZ_SAN) -std=c11 \
                -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Iinclude -Itests/fuzz \
                $(shell pkg-config --cflags lmdb jansson msgpack libcrypto 2>/dev/null)
FUZZ_LIBS    := $(shell pkg-config --libs lmdb jansson msgpack libcrypto 2>/dev/null) -lpthread -lm
# The decoders, the rules, the engine and the projections' record codec: no Kafka.
FUZZ_SRCS    := $(wildcard base/*.c events/*.c rules/*.c projections/*.c) $(wildcard daemon/engine*.c) \
                $(wildcard daemon/metrics.c) \
                daemon/log.c tests/fuzz/targets.c
FUZZ_OBJS    := $(FUZZ_SRCS:%.c=$(FUZZ_DIR)/%.o)
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)

.PHONY: fuzz fuzz-build fuzz-replay

$(FUZZ_DIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_main.c $(FUZZ_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -DFUZZ_FN=md_fuzz_$* $^ $(FUZZ_LIBS) -o $@

fuzz-build: $(FUZZ_BINS)

# Each target in turn, bounded by FUZZ_SECONDS; the summary line per target
# gives the inputs tried (libFuzzer's "Done N runs") and the corpus size.
fuzz: fuzz-build
	@set -e; total=0; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(FUZZ_DIR)/corpus/$$t tests/fuzz/corpus/$$t; \
	  echo "== fuzz $$t ($(FUZZ_SECONDS) s)"; \
	  if ! $(FUZZ_DIR)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	      -max_len=8192 -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/crash-$$t- \
	      $(if $(wildcard tests/fuzz/$$t.dict),-dict=tests/fuzz/$$t.dict) \
	      $(FUZZ_DIR)/corpus/$$t tests/fuzz/corpus/$$t >$(FUZZ_DIR)/$$t.log 2>&1; then \
	    tail -40 $(FUZZ_DIR)/$$t.log; echo "fuzz: $$t FOUND A CRASH (see $(FUZZ_DIR)/crash-$$t-*)"; exit 1; fi; \
	  runs=$$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' $(FUZZ_DIR)/$$t.log); \
	  total=$$((total + $${runs:-0})); \
	  echo "fuzz: $$t: $${runs:-?} inputs tried, $$(ls $(FUZZ_DIR)/corpus/$$t | wc -l) in corpus, no crash"; \
	done; echo "fuzz: $(words $(FUZZ_TARGETS)) targets, $$total inputs tried, 0 crashes"

fuzz-replay: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
	  files=$$(ls -d tests/fuzz/corpus/$$t/* tests/fuzz/regressions/$$t/* 2>/dev/null || true); \
	  [ -n "$$files" ] || continue; \
	  $(FUZZ_DIR)/fuzz_$$t $$files >$(FUZZ_DIR)/$$t.replay.log 2>&1 || \
	    { tail -30 $(FUZZ_DIR)/$$t.replay.log; exit 1; }; \
	  echo "fuzz-replay: $$t: $$(echo $$files | wc -w) inputs ok"; done

-include $(shell find $(FUZZ_DIR) -name '*.d' 2>/dev/null)
