# mivault build. Plain GNU Make (see docs/build.md for why not CMake): one tree of sources under
# src/, every directory a layer; objects go to build/$(MODE)/. MODE=release (default) or asan.
#
#   make                 build/release/mivault
#   make MODE=asan       build/asan/mivault (ASan + UBSan)
#   make test            unit + integration + compat tests, release build then ASan+UBSan build
#   make check-style     fail on banned string functions and on includes of a higher layer
#   make fuzz-build      libFuzzer harnesses (clang, ASan+UBSan) into build/fuzz/
#   make fuzz FUZZ_SECONDS=N   run each harness N seconds on a copy of its corpus (docs/fuzzing.md);
#                        FUZZ_RUNS=N instead: N executions each; FUZZ_NAMES="kv jwt": only those
MODE ?= release
B := build/$(MODE)
CC ?= cc
PKGS := libevent libevent_openssl libevent_pthreads jansson libcurl sqlite3 libpq openssl

WARN := -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wformat-security -Wstrict-prototypes \
        -Wmissing-prototypes -Wno-sign-conversion -Werror
HARDEN := -fstack-protector-strong -fPIE -D_FORTIFY_SOURCE=3
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -Isrc -Iinclude $(WARN) $(shell pkg-config --cflags $(PKGS)) -g
LDLIBS := $(shell pkg-config --libs $(PKGS)) -lpthread
LDFLAGS_BASE := -pie -Wl,-z,relro,-z,now

ifeq ($(MODE),asan)
  OPT := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  HARDEN := -fstack-protector-strong -fPIE
  LDFLAGS_BASE += -fsanitize=address,undefined
else
  OPT := -O2
endif
CFLAGS := $(CFLAGS_BASE) $(OPT) $(HARDEN) $(EXTRA_CFLAGS)
LDFLAGS := $(LDFLAGS_BASE) $(EXTRA_LDFLAGS)

SRCS := $(sort $(wildcard src/*/*.c))
MAIN := src/cli/main.c
LIBSRCS := $(filter-out $(MAIN),$(SRCS))
OBJS := $(LIBSRCS:%.c=$(B)/%.o)
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/%)

all: $(B)/mivault

$(B)/libmivault-internal.a: $(OBJS)
	@mkdir -p $(@D)
	ar rcs $@ $^

$(B)/mivault: $(B)/src/cli/main.o $(B)/libmivault-internal.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(B)/tests/%: tests/unit/%.c $(B)/libmivault-internal.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Wno-missing-prototypes $(LDFLAGS) -o $@ $< $(B)/libmivault-internal.a $(LDLIBS) -lcmocka

unit: $(UNIT_BINS)

test:
	bash scripts/test.sh

bench:
	bash bench/run.sh

check-style:
	@! grep -rnE '\b(strcpy|strcat|sprintf|vsprintf|gets|strtok|atoi|atol|sscanf|system|popen)\s*\(' src include \
	  || (echo "banned string function (see STYLE)"; exit 1)
	@bash scripts/check-layers.sh

clean:
	rm -rf build

# ---- fuzzing (docs/fuzzing.md) ----
# The library sources again, with clang and coverage instrumentation, in an object tree of their
# own (build/fuzz/) so the gcc builds are untouched; each tests/fuzz/fuzz_<name>.c is linked with
# libFuzzer's main. Same warnings as every build, -Werror included. No _FORTIFY_SOURCE: ASan
# replaces the checked string functions, as in MODE=asan.
FUZZ_CC ?= clang
FB := build/fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS := $(CFLAGS_BASE) -O1 -fPIE $(FUZZ_SAN) $(EXTRA_CFLAGS)
FUZZ_OBJS := $(LIBSRCS:%.c=$(FB)/%.o)
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_NAMES ?= $(FUZZ_SRCS:tests/fuzz/fuzz_%.c=%)
FUZZ_BINS := $(FUZZ_NAMES:%=$(FB)/fuzz_%)
FUZZ_SECONDS ?= 60

$(FB)/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(FB)/libmivault-internal.a: $(FUZZ_OBJS)
	@mkdir -p $(@D)
	ar rcs $@ $^

$(FB)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FB)/libmivault-internal.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Itests/fuzz -fsanitize=fuzzer -pie -o $@ $< \
	  $(FB)/libmivault-internal.a $(LDLIBS)

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	FUZZ_RUNS=$(FUZZ_RUNS) bash tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_NAMES)

-include $(OBJS:.o=.d) $(B)/src/cli/main.d
-include $(FUZZ_OBJS:.o=.d)
.PHONY: all unit test bench check-style clean fuzz fuzz-build

print-cflags:
	@echo $(CFLAGS)
print-libs:
	@echo $(LDFLAGS) $(LDLIBS)
