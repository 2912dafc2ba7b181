# libdeadline - top-level Makefile.
#
#   make            build build/libdeadline.so, build/deadline
#   make demo       build, then show a deadline firing on a real program
#   make test       unit + integration tests, then the same under ASan/UBSan
#   make bench      benchmarks (ratios against native, same launch)
#   make check-real real programs, CPython's suites, TSan, stress, fuzzing
#   make fuzz       the libFuzzer harnesses, FUZZ_SECONDS (default 30) each
#   make install    PREFIX=/usr/local DESTDIR=
#
# Every variable below can be overridden on the command line.

CC       ?= gcc
PREFIX   ?= /usr/local
LIBDIR   ?= $(PREFIX)/lib
BINDIR   ?= $(PREFIX)/bin
MANDIR   ?= $(PREFIX)/share/man
DESTDIR  ?=
BUILD    ?= build
SAN      ?=
JOBS     ?= 4

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wpointer-arith -Wformat=2
HARDEN   := -fstack-protector-strong -D_FORTIFY_SOURCE=2
OPT      ?= -O2 -g
CFLAGS   ?=
BASE_CFLAGS = -std=gnu11 $(OPT) $(WARN) $(HARDEN) -fPIC -D_GNU_SOURCE \
              -Ishim $(SANFLAGS) $(CFLAGS)
LDHARDEN := -Wl,-z,relro,-z,now,-z,noexecstack
LIBS     := -lconfig -ldl -lpthread

ifeq ($(SAN),asan)
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=undefined
HARDEN   := -fstack-protector-strong
endif

# Policy: plain C, no interposition; unit tests link it directly.
CORE_MODS  := self policy conn dlheap match conf_load conf_parse conf_faults \
              conf_check conf_rules names fault
# Interposition layer and engine.
SHIM_MODS  := real fdtab log engine track connect io wait expire holds dns \
              stats inject inject_io inject_wait wrap_socket wrap_io wrap_fd \
              wrap_wait wrap_signal wrap_dns wrap_proc signals

CORE_OBJS  := $(CORE_MODS:%=$(BUILD)/obj/%.o)
SHIM_OBJS  := $(SHIM_MODS:%=$(BUILD)/obj/%.o)
CORE_LIB   := $(BUILD)/libdlcore.a
SHIM_LIB   := $(BUILD)/libdeadline.so

UNIT_SRCS  := $(wildcard tests/unit/*.c)
INTEG_SRCS := $(wildcard tests/integration/*.c)
HELPER_SRCS:= $(wildcard tests/helpers/*.c)
HELPERS    := $(HELPER_SRCS:tests/helpers/%.c=$(BUILD)/helpers/%) \
              $(BUILD)/helpers/libctorlib.so
UNIT_BIN   := $(BUILD)/tests/unit
INTEG_BIN  := $(BUILD)/tests/integration

.PHONY: all deps test-deps test test-plain test-asan demo bench install \
        uninstall clean check-real realworld-build tsan-build fuzz fuzz-build
.DEFAULT_GOAL := all

TOOL_BINS  := $(if $(wildcard tools/deadline.c),$(BUILD)/deadline)

all: deps $(SHIM_LIB) $(TOOL_BINS)

deps:
	@tools/ensure-deps build

test-deps:
	@tools/ensure-deps test

$(BUILD)/obj/%.o: shim/%.c $(wildcard shim/*.h) | $(BUILD)/obj
	$(CC) $(BASE_CFLAGS) -fvisibility=hidden -c -o $@ $<

$(CORE_LIB): $(CORE_OBJS)
	rm -f $@ && ar rcs $@ $^

$(SHIM_LIB): $(SHIM_OBJS) $(CORE_LIB)
	$(CC) $(BASE_CFLAGS) -shared -Wl,-soname,libdeadline.so $(LDHARDEN) \
	    -o $@ $(SHIM_OBJS) $(CORE_LIB) $(LIBS)

$(BUILD)/deadline: tools/deadline.c $(CORE_LIB) | $(BUILD)
	$(CC) $(BASE_CFLAGS) -DDL_LIBDIR='"$(LIBDIR)"' $(LDHARDEN) -o $@ $< \
	    $(CORE_LIB) $(LIBS)

$(BUILD)/helpers/%: tests/helpers/%.c tests/helpers/helpers.h | $(BUILD)/helpers
	$(CC) $(BASE_CFLAGS) $(LDHARDEN) -Wno-missing-prototypes -o $@ $< -lpthread

# ctorlib.c twice: a library whose constructor makes socket calls, and a
# program linked against it (core::socket_calls_in_foreign_constructor).
$(BUILD)/helpers/libctorlib.so: tests/helpers/ctorlib.c tests/helpers/helpers.h | $(BUILD)/helpers
	$(CC) $(BASE_CFLAGS) -Wno-missing-prototypes -shared \
	    -DDL_CTORLIB_SHARED -o $@ $<

$(BUILD)/helpers/ctorlib: tests/helpers/ctorlib.c tests/helpers/helpers.h \
                          $(BUILD)/helpers/libctorlib.so
	$(CC) $(BASE_CFLAGS) $(LDHARDEN) -Wno-missing-prototypes -o $@ $< \
	    -L$(BUILD)/helpers -Wl,--no-as-needed -lctorlib \
	    -Wl,-rpath,'$$ORIGIN' -lpthread

$(UNIT_BIN): $(UNIT_SRCS) $(CORE_LIB) | $(BUILD)/tests
	$(CC) $(BASE_CFLAGS) -Wno-missing-prototypes -o $@ $(UNIT_SRCS) \
	    $(CORE_LIB) -lcriterion $(LIBS)

$(INTEG_BIN): $(INTEG_SRCS) tests/integration/harness.h tests/helpers/helpers.h | $(BUILD)/tests
	$(CC) $(BASE_CFLAGS) -Wno-missing-prototypes -o $@ \
	    $(filter %.c,$^) -lcriterion -lpthread

$(BUILD) $(BUILD)/obj $(BUILD)/tests $(BUILD)/helpers:
	mkdir -p $@

# make test: the plain build, then the ASan/UBSan build, each through the
# same runner; the runner prints one closing "N passed, M failed" line.
test: test-deps
	@tools/run-tests

test-plain: test-deps all $(UNIT_BIN) $(INTEG_BIN) $(HELPERS)
	BUILD=$(BUILD) SAN=$(SAN) JOBS=$(JOBS) tests/run-suite

test-asan:
	$(MAKE) BUILD=build/asan SAN=asan test-plain

# make check-real: the real-world checks (tests/realworld/): CPython's
# network suites with and without the shim, git/psql/redis/python daemons
# against misbehaving servers, a TSan build under threaded clients, the
# stress helper, the fuzzers for FUZZ_SECONDS each, a hostile environment.
# One Criterion binary; tests/realworld/run prints the synthesis line that
# tools/run-tests sums.
RW_SRCS    := $(wildcard tests/realworld/*.c)
RW_BIN     := $(BUILD)/tests/realworld
TSAN_BUILD ?= build/tsan
FUZZ_BUILD := $(BUILD)/fuzz
FUZZ_SECONDS ?= 30
FUZZ_CC    ?= clang
FUZZ_NAMES := fuzz_conf fuzz_parsers
FUZZ_BINS  := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/%)
CORE_SRCS  := shim/policy.c shim/conf_load.c shim/conf_parse.c \
              shim/conf_faults.c shim/conf_check.c shim/conf_rules.c \
              shim/match.c shim/fault.c

$(RW_BIN): $(RW_SRCS) tests/realworld/rw.h tests/integration/harness.h | $(BUILD)/tests
	$(CC) $(BASE_CFLAGS) -Wno-missing-prototypes -Itests/integration -o $@ \
	    $(RW_SRCS) -lcriterion -lpthread

realworld-build: test-deps all $(RW_BIN) $(HELPERS)

# The shim and the threaded helpers built with ThreadSanitizer (a TSan
# library cannot be preloaded into an uninstrumented program).
tsan-build:
	$(MAKE) BUILD=$(TSAN_BUILD) OPT="-O1 -g" CFLAGS="-fsanitize=thread -Wno-tsan" \
	    $(TSAN_BUILD)/libdeadline.so $(TSAN_BUILD)/helpers/dlclient \
	    $(TSAN_BUILD)/helpers/stress

$(FUZZ_BUILD)/%: tests/fuzz/%.c $(CORE_SRCS) $(wildcard shim/*.h)
	@mkdir -p $(FUZZ_BUILD)
	$(FUZZ_CC) -g -O1 -std=gnu11 -D_GNU_SOURCE -Ishim \
	    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	    -o $@ $< $(CORE_SRCS) -lconfig

fuzz-build: test-deps $(FUZZ_BINS)

fuzz: fuzz-build
	BUILD=$(BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run-fuzz

check-real: realworld-build tsan-build fuzz-build
	BUILD=$(BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) tests/realworld/run

demo: all
	@tools/ensure-deps demo
	@BUILD=$(BUILD) tools/demo

# The benchmarks need only the library and their own client/peer program.
bench: deps $(SHIM_LIB) $(BUILD)/dlbench
	@tools/ensure-deps bench
	@BUILD=$(BUILD) tools/bench

$(BUILD)/dlbench: tools/dlbench.c | $(BUILD)
	$(CC) $(BASE_CFLAGS) $(LDHARDEN) -o $@ $<

install: all
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(BINDIR) \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7
	install -m 0644 $(SHIM_LIB) $(DESTDIR)$(LIBDIR)/libdeadline.so
	install -m 0755 $(BUILD)/deadline $(DESTDIR)$(BINDIR)/deadline
	install -m 0644 docs/deadline.1 $(DESTDIR)$(MANDIR)/man1/deadline.1
	install -m 0644 docs/libdeadline.7 $(DESTDIR)$(MANDIR)/man7/libdeadline.7

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libdeadline.so $(DESTDIR)$(BINDIR)/deadline \
	    $(DESTDIR)$(MANDIR)/man1/deadline.1 \
	    $(DESTDIR)$(MANDIR)/man7/libdeadline.7

clean:
	rm -rf build
