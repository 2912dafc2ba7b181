# libdeadline - top-level Makefile.
#
#   make            build build/libdeadline.so, build/deadline
#   make demo       build, then show a deadline firing on a real program
#   make test       unit + integration tests, then the same under ASan/UBSan
#   make bench      benchmarks (ratios against native, same launch)
#   make check-real real programs, CPython's suites, TSan, stress, fuzzing
#   make lateness   how late the first expiry comes, per real client program
#   make fuzz       the libFuzzer harnesses, FUZZ_SECONDS (default 30) each
#   make install    PREFIX=/usr/local DESTDIR= (make uninstall: the same)
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
VERSION  := 0.1.0
BASE_CFLAGS = -std=gnu11 $(OPT) $(WARN) $(HARDEN) -fPIC -D_GNU_SOURCE \
              -DDL_VERSION='"$(VERSION)"' -Ishim $(SANFLAGS) $(CFLAGS)
LDHARDEN := -Wl,-z,relro,-z,now,-z,noexecstack
LIBS     := -lconfig -ldl -lpthread

ifeq ($(SAN),asan)
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=undefined
HARDEN   := -fstack-protector-strong
endif

# Policy: plain C, no interposition; unit tests link it directly.
CORE_MODS  := self policy conn dlheap match conf_load conf_parse conf_faults \
              conf_check conf_rules names fault http1
# Interposition layer and engine.
SHIM_MODS  := real fdtab log log_line engine reload live track connect io io_fast exchange wait expire reaper holds dns \
              stats inject inject_io inject_wait wrap_socket wrap_io wrap_fd \
              wrap_wait wrap_signal wrap_dns wrap_proc signals \
              xfer stream wrap_splice observe

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

.PHONY: all deps test-deps test test-plain test-asan demo bench bench-publish install \
        uninstall clean check-real realworld-build tsan-build fuzz fuzz-build lateness
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

# deadline looks for the library relative to itself (beside it, at LIBDIR
# relative to BINDIR, ../lib/, ../lib/<multiarch>/), then in LIBDIR.
MULTIARCH   ?= $(shell $(CC) -print-multiarch 2>/dev/null)
DEADLINE_DIRS = -DDL_LIBDIR='"$(LIBDIR)"' -DDL_BINDIR='"$(BINDIR)"' \
                -DDL_MULTIARCH='"$(MULTIARCH)"'

# deadline --outside (tools/outside*.c, tools/diag.c) logs through the
# shim's own log.c and log_line.c (and real.c, which they call).
OUTSIDE_SRCS := tools/outside.c tools/outside_track.c tools/outside_proc.c \
                tools/diag.c tools/ticks.c
# deadline observe / suggest / report (docs/observe.md).
OBSERVE_SRCS := tools/observe.c tools/suggest.c tools/report.c
DEADLINE_OBJS = $(BUILD)/obj/log.o $(BUILD)/obj/log_line.o $(BUILD)/obj/real.o

TOOL_SRCS := tools/status.c tools/libsearch.c

$(BUILD)/deadline: tools/deadline.c $(TOOL_SRCS) $(OUTSIDE_SRCS) $(OBSERVE_SRCS) \
                   $(wildcard tools/*.h) shim/observe.h \
                   $(DEADLINE_OBJS) $(CORE_LIB) | $(BUILD)
	$(CC) $(BASE_CFLAGS) $(DEADLINE_DIRS) $(LDHARDEN) -o $@ $< \
	    $(TOOL_SRCS) $(OUTSIDE_SRCS) $(OBSERVE_SRCS) $(DEADLINE_OBJS) $(CORE_LIB) \
	    $(LIBS) -lm

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

$(UNIT_BIN): $(UNIT_SRCS) tools/ticks.c tools/ticks.h $(CORE_LIB) | $(BUILD)/tests
	$(CC) $(BASE_CFLAGS) -Wno-missing-prototypes -o $@ $(UNIT_SRCS) tools/ticks.c \
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

$(RW_BIN): $(RW_SRCS) $(wildcard tests/realworld/*.h) tests/integration/harness.h | $(BUILD)/tests
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

# make lateness: every client program of docs/compatibility.md this machine
# has, 20 runs each under a 300 ms request deadline against a server that
# never answers; prints p50/p99 of how late the first expiry came
# (LATENESS_ARGS: e.g. --runs 5 --markdown).  Measures, asserts nothing.
lateness: all
	@BUILD=$(BUILD) tools/lateness $(LATENESS_ARGS)

demo: all
	@tools/ensure-deps demo
	@BUILD=$(BUILD) tools/demo

# The benchmarks need the library, their own client/peer program and (for
# the outside mode's case, as root) the deadline command.
bench: deps $(SHIM_LIB) $(BUILD)/dlbench $(TOOL_BINS)
	@tools/ensure-deps bench
	@BUILD=$(BUILD) tools/bench

# The same, publishing: results into docs/bench/ and the generated part of
# docs/benchmarks.md (make bench writes only under $(BUILD)/bench).
bench-publish: deps $(SHIM_LIB) $(BUILD)/dlbench $(TOOL_BINS)
	@tools/ensure-deps bench
	@BUILD=$(BUILD) BENCH_OUT=docs/bench BENCH_DOCS=1 tools/bench

$(BUILD)/dlbench: tools/dlbench.c | $(BUILD)
	$(CC) $(BASE_CFLAGS) $(LDHARDEN) -o $@ $<

# make install [PREFIX=/usr/local] [LIBDIR=...] [BINDIR=...] [DESTDIR=...]
#
# Installs the library, deadline, the man pages and the documentation
# (DOCDIR; the installed man pages name it).  deadline is compiled again
# here for the LIBDIR and BINDIR given to this command, into a temporary
# directory (build/deadline is left alone).
#
# LD_PRELOAD=libdeadline.so (a bare name) works only when the loader can
# find the library by itself: as root, with DESTDIR empty, and LIBDIR a
# loader directory or PREFIX /usr or /usr/local (LDSO_REGISTER=auto;
# =yes: any PREFIX; =no: never), install writes $(LDSO_CONF) naming LIBDIR
# (unless the loader already searches LIBDIR) and runs ldconfig.  Every
# other time it prints the absolute LD_PRELOAD line to use instead.  That
# step (and its reverse in uninstall) is tools/ldso-register.
DATADIR       ?= $(PREFIX)/share
DOCDIR        ?= $(DATADIR)/doc/libdeadline
LDCONFIG      ?= ldconfig
LDSO_CONF     ?= /etc/ld.so.conf.d/libdeadline.conf
LDSO_REGISTER ?= auto
DOC_FILES     := README.md $(wildcard docs/*.md)
# The documentation directory the man pages in docs/ name.
MAN_DOCDIR    := /usr/local/share/doc/libdeadline
# What tools/ldso-register reads.
LDSO_ENV       = LIBDIR='$(LIBDIR)' PREFIX='$(PREFIX)' BINDIR='$(BINDIR)' \
                 DESTDIR='$(DESTDIR)' MULTIARCH='$(MULTIARCH)' \
                 LDCONFIG='$(LDCONFIG)' LDSO_CONF='$(LDSO_CONF)' \
                 LDSO_REGISTER='$(LDSO_REGISTER)'

install: all
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(BINDIR) \
	    $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7 \
	    $(DESTDIR)$(DOCDIR)
	install -m 0644 $(SHIM_LIB) $(DESTDIR)$(LIBDIR)/libdeadline.so
	@tmp=$$(mktemp -d) || exit 1; \
	trap 'rm -rf "$$tmp"' EXIT; \
	echo "$(CC) ... -o $(DESTDIR)$(BINDIR)/deadline (for LIBDIR=$(LIBDIR) BINDIR=$(BINDIR))"; \
	$(CC) $(BASE_CFLAGS) $(DEADLINE_DIRS) $(LDHARDEN) -o "$$tmp/deadline" \
	    tools/deadline.c $(TOOL_SRCS) $(OUTSIDE_SRCS) $(OBSERVE_SRCS) $(DEADLINE_OBJS) \
	    $(CORE_LIB) $(LIBS) -lm || exit 1; \
	install -m 0755 "$$tmp/deadline" $(DESTDIR)$(BINDIR)/deadline || exit 1; \
	for page in man1/deadline.1 man7/libdeadline.7; do \
	    echo "install -m 0644 docs/$${page#*/} $(DESTDIR)$(MANDIR)/$$page (naming $(DOCDIR))"; \
	    sed 's|$(MAN_DOCDIR)|$(DOCDIR)|g' "docs/$${page#*/}" >"$$tmp/page" && \
	    install -m 0644 "$$tmp/page" $(DESTDIR)$(MANDIR)/$$page || exit 1; \
	done
	install -m 0644 $(DOC_FILES) $(DESTDIR)$(DOCDIR)/
	@$(LDSO_ENV) tools/ldso-register install

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libdeadline.so $(DESTDIR)$(BINDIR)/deadline \
	    $(DESTDIR)$(MANDIR)/man1/deadline.1 \
	    $(DESTDIR)$(MANDIR)/man7/libdeadline.7 \
	    $(addprefix $(DESTDIR)$(DOCDIR)/,$(notdir $(DOC_FILES)))
	@if [ -d $(DESTDIR)$(DOCDIR) ]; then rmdir $(DESTDIR)$(DOCDIR) || true; fi
	@$(LDSO_ENV) tools/ldso-register uninstall

clean:
	rm -rf build
