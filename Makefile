# marketd - build, tests and tools. `make help` lists the targets.
#
# Every object goes to $(BUILD) (build/ by default; build/asan for `make asan`).
# The library build/libmarketd.a holds every module; binaries and tests link it.
#
# Flags are composed as redis composes FINAL_CFLAGS: CFLAGS, LDFLAGS and LDLIBS
# are the user's (`make CFLAGS=-O0`, `make LDFLAGS=-static-libasan`) and only
# add to what the build needs, so they can never drop -std, -Iinclude, the
# warnings or -Werror (tests/unit/make_flags.sh checks it).

CC       ?= cc
BUILD    ?= build
PKGS     := rdkafka lmdb jansson msgpack libcrypto libmicrohttpd
STD      := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
WARN     := -Wall -Wextra -Wpedantic -Wstrict-prototypes -Wmissing-prototypes \
            -Wold-style-definition -Wwrite-strings -Wformat=2 -Wshadow -Wvla -Werror
CFLAGS   ?= -O2 -g
LDFLAGS  ?=
LDLIBS   ?=
MD_CFLAGS  := -Iinclude -MMD -MP $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
MD_LDFLAGS :=
MD_LIBS    := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread
ifneq ($(SANITIZE),)
MD_CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
MD_LDFLAGS += -fsanitize=$(SANITIZE)
endif
FINAL_CFLAGS  = $(STD) $(WARN) $(CFLAGS) $(MD_CFLAGS)
FINAL_LDFLAGS = $(LDFLAGS) $(MD_LDFLAGS)
FINAL_LIBS    = $(LDLIBS) $(MD_LIBS)

LIB_SRCS  := $(wildcard base/*.c events/*.c rules/*.c projections/*.c daemon/*.c)
LIB_SRCS  := $(filter-out daemon/main.c,$(LIB_SRCS))
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB       := $(BUILD)/libmarketd.a
TEST_SRCS := $(wildcard tests/test_*.c)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
SUPPORT   := $(filter-out $(TEST_SRCS),$(wildcard tests/*.c))
SUPPORT_OBJS := $(SUPPORT:%.c=$(BUILD)/%.o)
BINS      := $(BUILD)/marketctl $(BUILD)/marketd $(if $(wildcard tools/market-load.c),$(BUILD)/market-load) \
             $(BUILD)/md-docgen

.PHONY: all unit test asan tsan valgrind deps run clean help integration docs
# Keep object files that pattern rules chain through (tests), so reruns relink nothing.
.SECONDARY:
all: $(BINS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(FINAL_CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# marketctl's subcommands in files of their own (tools/ctl_*.c, tools/ctl.h)
CTL_OBJS  := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tools/ctl_*.c))

$(BUILD)/marketctl: $(BUILD)/tools/marketctl.o $(CTL_OBJS) $(LIB)
	$(CC) $(FINAL_LDFLAGS) $^ $(FINAL_LIBS) -o $@

# docs/commands.md and docs/schema/ are generated from the decoder's and the
# rules' tables: `make docs` rewrites them (tests/unit/docs_generated.sh checks).
$(BUILD)/md-docgen: $(BUILD)/tools/md_docgen.o $(LIB)
	$(CC) $(FINAL_LDFLAGS) $^ $(FINAL_LIBS) -o $@

docs: $(BUILD)/md-docgen
	$(BUILD)/md-docgen docs

$(BUILD)/marketd: $(BUILD)/daemon/main.o $(LIB)
	$(CC) $(FINAL_LDFLAGS) $^ $(FINAL_LIBS) -o $@

# market-load's parts in files of their own (tools/load_*.c, tools/load.h)
LOAD_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tools/load_*.c))

$(BUILD)/market-load: $(BUILD)/tools/market-load.o $(LOAD_OBJS) $(LIB)
	$(CC) $(FINAL_LDFLAGS) $^ $(FINAL_LIBS) -o $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(SUPPORT_OBJS) $(LIB)
	$(CC) $(FINAL_LDFLAGS) $^ $(FINAL_LIBS) $(shell pkg-config --libs cmocka) -o $@

# unit: the cmocka suites, no broker. Each suite prints its own summary.
unit: $(TEST_BINS) $(BINS)
	@set -e; for t in $(TEST_BINS); do echo "== $$t"; MARKETD_BUILD=$(BUILD) $$t; done
	@set -e; for t in tests/unit/*.sh; do [ -e "$$t" ] || continue; echo "== $$t"; \
	  MARKETD_BUILD=$(BUILD) bash $$t; done

# test: everything, including the integration tests against a real broker.
test: unit integration

integration: $(BINS)
	MARKETD_BUILD=$(BUILD) bash scripts/integration.sh

asan:
	$(MAKE) BUILD=build/asan SANITIZE=address,undefined unit

# tsan: under ThreadSanitizer, the suites whose code shares data between
# threads of its own: the replays' two lanes and the last log sorted aside
# (test_proj, test_proj_property), the engine's decoding ahead (test_engine),
# the projector's head start beside the writer (test_projector).
TSAN_TESTS := test_proj test_proj_property test_engine test_projector
tsan:
	$(MAKE) BUILD=build/tsan SANITIZE=thread $(TSAN_TESTS:%=build/tsan/tests/%)
	@set -e; for t in $(TSAN_TESTS); do echo "== $$t (tsan)"; \
	  TSAN_OPTIONS=halt_on_error=1 MARKETD_BUILD=build/tsan build/tsan/tests/$$t; done

# valgrind: the cmocka suites under memcheck (mk/check.mk)
valgrind: valgrind-ci

deps:
	bash scripts/deps.sh

run: all
	bash scripts/demo.sh

clean:
	rm -rf build

help:
	@echo "targets: all unit test integration asan tsan valgrind deps run kafka-up kafka-down layers clean"

-include mk/*.mk
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
