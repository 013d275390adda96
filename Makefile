# edibroker - plain GNU Makefile.
#
#   make              build bin/edibrokerd, bin/edibrokerctl and bin/edibroker-peer
#   make deps         install missing build dependencies (apt-get, as root)
#   make run          build and run the daemon on config/edibroker.conf.example
#   make check        deps + layer check + build + unit tests + fuzz corpus replay + package +
#                     integration tests (test_package checks the package)
#   make unit         unit tests only;  make unit T=config  one test binary
#   make integration  integration tests only;  make integration T=spool  one scenario
#   make bench        end-to-end benchmark (tests/bench/bench.py; BENCH_ARGS=--quick)
#   make fuzz         build libFuzzer targets (clang) into build/fuzz/
#   make man          man pages (scdoc) into build/man/
#   make install      install what the package installs (DESTDIR, PREFIX)
#   make deb          build/deb/edibroker_<version>_<arch>.deb (debhelper, packaging/debian)
#
#   SANITIZE=address,undefined   build with sanitizers (objects are rebuilt when it changes)
#   V=1                          show full commands

CC       ?= cc
PREFIX   ?= /usr/local
SANITIZE ?=
PYTHON   ?= /usr/bin/python3

PKGS := libevent libevent_pthreads libevent_openssl openssl libxml-2.0 libsystemd sqlite3 libcurl \
	jansson libzmq libpq

# The version is the package's: the top entry of packaging/debian/changelog.
VERSION := $(shell sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' packaging/debian/changelog)

Q := @
ifeq ($(V),1)
Q :=
endif

CFLAGS_BASE := -std=gnu11 -O2 -g -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
	-Wstrict-prototypes -Wmissing-prototypes -fno-strict-aliasing \
	-D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -I. -Idaemon -MMD -MP
# Where `make install` puts the data the daemon reads (the OIOXML schemas):
# the default of [broker] xsd_dir. In the flags, so another PREFIX rebuilds.
CFLAGS_BASE += -DEDIBROKER_DATADIR='"$(PREFIX)/share/edibroker"'
ifneq ($(SANITIZE),)
CFLAGS_BASE += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZE)
endif

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
ALL_CFLAGS = $(CFLAGS_BASE) $(PKG_CFLAGS) $(CPPFLAGS) $(CFLAGS)

B := build

# Every .c under codecs/ and daemon/ but the entry points is the library.
LIB_SRCS := $(filter-out daemon/main.c,$(shell find codecs daemon -name '*.c' | sort))
LIB_OBJS := $(LIB_SRCS:%.c=$(B)/%.o)
LIB      := $(B)/libedibroker.a

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(B)/tests/%)
# Test doubles linked ahead of the library (tests/unit/fake_*.c).
FAKE_SRCS := $(wildcard tests/unit/fake_*.c tests/unit/testutil.c)
FAKE_OBJS := $(FAKE_SRCS:%.c=$(B)/%.o)

FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_REPLAY := $(FUZZ_SRCS:tests/fuzz/%.c=$(B)/fuzz-replay/%)

.PHONY: all unit-pg deps run check layers unit integration fuzz fuzz-replay bench install clean man \
	conffile deb
# Keep test and fuzz objects (chain intermediates) so a second `make check` relinks nothing.
.SECONDARY:
all: bin/edibrokerd bin/edibrokerctl bin/edibroker-peer

# Objects depend on the flags they were built with, so SANITIZE=... rebuilds.
FLAGS_STAMP := $(B)/flags.stamp
FLAGS_NOW := $(CC) $(ALL_CFLAGS) $(LDFLAGS)
$(shell mkdir -p $(B); [ "`cat $(FLAGS_STAMP) 2>/dev/null`" = "$(FLAGS_NOW)" ] || echo "$(FLAGS_NOW)" > $(FLAGS_STAMP))

$(B)/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	@[ "$(Q)" = "" ] || echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@[ "$(Q)" = "" ] || echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

# The version reaches the binaries that print it.
$(B)/daemon/main.o: ALL_CFLAGS += -DEDIBROKER_VERSION='"$(VERSION)"'
$(B)/daemon/main.o: packaging/debian/changelog

bin/edibrokerd: $(B)/daemon/main.o $(LIB)
	@mkdir -p bin
	@[ "$(Q)" = "" ] || echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

bin/edibrokerctl: $(B)/tools/edibrokerctl.o $(LIB)
	@mkdir -p bin
	@[ "$(Q)" = "" ] || echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# The HTTP client of `edibroker-peer send --http` (tools/peer_http.h), and a
# command around it that test_http drives against the real daemon.
PEER_HTTP_OBJ := $(B)/tools/peer_http.o

$(B)/peers/peer_http_drive: $(B)/tests/peers/peer_http_drive.o $(PEER_HTTP_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	@[ "$(Q)" = "" ] || echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

bin/edibroker-peer: $(B)/tools/edibroker-peer.o $(PEER_HTTP_OBJ) $(LIB)
	@mkdir -p bin
	@[ "$(Q)" = "" ] || echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(B)/tests/%: $(B)/tests/unit/%.o $(FAKE_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	@[ "$(Q)" = "" ] || echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(FAKE_OBJS) $(LIB) $(PKG_LIBS) -lcriterion

# Fuzz targets replayed over their corpus by a plain driver (no clang needed).
$(B)/fuzz-replay/%: $(B)/tests/fuzz/%.o $(B)/tests/fuzz/replay_main.o $(LIB)
	@mkdir -p $(dir $@)
	@[ "$(Q)" = "" ] || echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

deps:
	$(Q)scripts/install-deps.sh

run: all
	$(Q)mkdir -p var
	./bin/edibrokerd -c config/edibroker.conf.example

# The store's tests run twice: on SQLite above, and on a throw-away
# PostgreSQL server (tests/scripts/with-pg.sh) with the suites both backends
# share, plus test_store_pg (leases, fencing, tokens, several writers).
PG_UNIT := store store_outage store_history store_acks store_pg
unit: $(UNIT_BINS)
	$(Q)set -e; for t in $(filter-out %/test_store_pg,$(if $(T),$(B)/tests/test_$(T),$(UNIT_BINS))); do \
		echo "  UNIT    $$t"; $$t --jobs 2 --short-filename $(if $(V),--verbose,); done
	$(Q)$(if $(and $(T),$(filter-out $(PG_UNIT),$(T))),true,$(MAKE) --no-print-directory unit-pg)

unit-pg: $(B)/tests/test_store $(B)/tests/test_store_outage $(B)/tests/test_store_history \
	 $(B)/tests/test_store_acks \
	 $(B)/tests/test_store_pg
	@echo "  UNIT    store tests on postgresql"
	$(Q)tests/scripts/with-pg.sh sh -c 'set -e; \
		$(B)/tests/test_store --jobs 2 --short-filename --filter "store/*"; \
		$(B)/tests/test_store_outage --jobs 2 --short-filename --filter "outage_store/*"; \
		$(B)/tests/test_store_history --jobs 2 --short-filename --filter "store_history/*"; \
		$(B)/tests/test_store_acks --jobs 2 --short-filename --filter "acks/*"; \
		$(B)/tests/test_store_pg --jobs 2 --short-filename --filter "store_pg/*"; \
		$(B)/tests/test_store_pg --jobs 1 --short-filename --filter "store_pg_restart/*"'

fuzz-replay: $(FUZZ_REPLAY)
	$(Q)set -e; for f in $(FUZZ_REPLAY); do n=$${f##*/}; \
		echo "  REPLAY  $$n"; $$f tests/fuzz/corpus/$${n#fuzz_}; done

integration: all $(B)/peers/peer_http_drive
	$(Q)EDIBROKER_BUILD=$(B) $(if $(SANITIZE),EDIBROKER_TEST_TIMEOUT_SCALE=3 )$(PYTHON) tests/integration/run.py $(if $(T),$(T),)

# The house rules for includes (scripts/check-layers.py), and a test that the
# check does fail on a wrong include.
layers:
	$(Q)$(PYTHON) scripts/check-layers.py
	$(Q)sh tests/scripts/test_layers.sh

# The package is built before the integration scenarios (test_package checks
# it), so its compiler does not compete with their timing.
check: deps
	$(Q)$(MAKE) --no-print-directory layers all unit fuzz-replay deb
	$(Q)$(MAKE) --no-print-directory integration

bench: all $(B)/bench/minrelay $(B)/bench/zmqbench
	$(Q)$(PYTHON) tests/bench/bench.py $(BENCH_ARGS)

$(B)/bench/minrelay: tests/bench/minrelay.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) -O2 -Wall -Wextra -Werror -o $@ $<

# The ZeroMQ load generator and receiver, with the daemon's own framing.
$(B)/bench/zmqbench: $(B)/tests/bench/zmqbench.o $(LIB)
	@mkdir -p $(dir $@)
	@[ "$(Q)" = "" ] || echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

# Builds every libFuzzer target (clang, ASan+UBSan) and runs each for
# FUZZ_SECONDS at the daemon's real 16 MiB limit, reporting slow units. New
# inputs go to build/fuzz/corpus-NAME (seeded from the checked-in corpus);
# a crash, leak or timeout lands in tests/fuzz/corpus/NAME/, where
# `make check` replays it until it is fixed. FUZZ=name runs one target.
FUZZ_SECONDS ?= 60
fuzz:
	$(Q)mkdir -p $(B)/fuzz
	$(Q)for f in $(if $(FUZZ),tests/fuzz/fuzz_$(FUZZ).c,$(FUZZ_SRCS)); do n=$$(basename $$f .c); \
		echo "  FUZZ    $$n"; \
		clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I. -Idaemon \
			$(PKG_CFLAGS) $$f $(filter codecs/% daemon/conf/ini.c,$(LIB_SRCS)) \
			-o $(B)/fuzz/$$n $(PKG_LIBS) || exit 1; \
		c=$(B)/fuzz/corpus-$${n#fuzz_}; mkdir -p $$c; \
		$(B)/fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -max_len=16777216 -timeout=10 \
			-rss_limit_mb=2048 -report_slow_units=2 -print_final_stats=1 \
			-artifact_prefix=tests/fuzz/corpus/$${n#fuzz_}/ \
			$$c tests/fuzz/corpus/$${n#fuzz_} > $(B)/fuzz/$$n.log 2>&1; rc=$$?; \
		grep -E '^(stat::|Done|==|SUMMARY|Slowest)' $(B)/fuzz/$$n.log; \
		[ $$rc -eq 0 ] || { tail -40 $(B)/fuzz/$$n.log; exit $$rc; }; done

# ---- man pages, the packaged configuration, install, the Debian package ----

MAN_SRCS := $(wildcard docs/man/*.scd)
MAN_PAGES := $(MAN_SRCS:docs/man/%.scd=$(B)/man/%)

man: $(MAN_PAGES)

$(B)/man/%: docs/man/%.scd
	@mkdir -p $(dir $@)
	@[ "$(Q)" = "" ] || echo "  SCDOC   $@"
	$(Q)scdoc < $< > $@.tmp && mv $@.tmp $@

# /etc/edibroker/edibroker.conf: the example, every value and endpoint
# commented out (packaging/conffile.awk).
conffile: $(B)/edibroker.conf

$(B)/edibroker.conf: config/edibroker.conf.example packaging/conffile.awk
	@mkdir -p $(dir $@)
	$(Q)awk -f packaging/conffile.awk $< > $@.tmp && mv $@.tmp $@

UNITDIR    := /lib/systemd/system
SYSUSERSDIR := /usr/lib/sysusers.d
TMPFILESDIR := /usr/lib/tmpfiles.d
DATADIR    = $(PREFIX)/share/edibroker
# Operators' helpers from scripts/ (the rest of scripts/ builds and checks).
OPS_SCRIPTS := scripts/notify-sms-example.sh
# Prometheus rules and Grafana dashboards, as they are added (README.md there).
PROM_FILES = $(filter-out packaging/prometheus/README.md,$(wildcard packaging/prometheus/*))
# MedCom's OIOXML schemas ([broker] xsd_dir), with the README naming their
# source and licence, installed as the repository holds them.
XSD_FILES = $(shell find data/xsd -type f | sort)

install: all man conffile
	install -D -m 0755 bin/edibrokerd $(DESTDIR)$(PREFIX)/sbin/edibrokerd
	install -D -m 0755 bin/edibrokerctl $(DESTDIR)$(PREFIX)/bin/edibrokerctl
	install -D -m 0755 bin/edibroker-peer $(DESTDIR)$(PREFIX)/bin/edibroker-peer
	install -D -m 0644 packaging/edibrokerd.service $(DESTDIR)$(UNITDIR)/edibrokerd.service
	install -D -m 0644 packaging/edibroker.sysusers $(DESTDIR)$(SYSUSERSDIR)/edibroker.conf
	install -D -m 0644 packaging/edibroker.tmpfiles $(DESTDIR)$(TMPFILESDIR)/edibroker.conf
	@# never over an operator's configuration
	[ -e $(DESTDIR)/etc/edibroker/edibroker.conf ] || \
		install -D -m 0640 $(B)/edibroker.conf $(DESTDIR)/etc/edibroker/edibroker.conf
	install -D -m 0644 config/edibroker.conf.example \
		$(DESTDIR)$(PREFIX)/share/doc/edibroker/examples/edibroker.conf.example
	install -D -m 0644 packaging/bash-completion/edibrokerctl \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/edibrokerctl
	set -e; for m in $(MAN_PAGES); do s=$${m##*.}; \
		install -D -m 0644 $$m $(DESTDIR)$(PREFIX)/share/man/man$$s/$${m##*/}; done
	set -e; for f in $(OPS_SCRIPTS); do \
		install -D -m 0755 $$f $(DESTDIR)$(DATADIR)/$${f##*/}; done
	set -e; for f in $(PROM_FILES); do \
		install -D -m 0644 $$f $(DESTDIR)$(DATADIR)/prometheus/$${f##*/}; done
	set -e; for f in $(XSD_FILES); do \
		install -D -m 0644 $$f $(DESTDIR)$(DATADIR)/$${f#data/}; done

# The package is built from a copy of the sources under build/deb (the
# packaging/debian directory as its debian/), so dpkg-buildpackage writes
# nothing outside the repository; the .deb lands in build/deb/.
DEB_ARCH := $(shell dpkg-architecture -qDEB_HOST_ARCH 2>/dev/null)
DEB      := $(B)/deb/edibroker_$(VERSION)_$(DEB_ARCH).deb
DEB_TREE := $(B)/deb/edibroker-$(VERSION)
DEB_SRCS := Makefile README.md codecs daemon tools config docs packaging scripts data

deb: $(DEB)

$(DEB): $(shell find $(DEB_SRCS) -type f 2>/dev/null)
	@[ "$(Q)" = "" ] || echo "  DEB     $@"
	$(Q)rm -rf $(B)/deb && mkdir -p $(DEB_TREE)
	$(Q)cp -a $(DEB_SRCS) $(DEB_TREE)/
	$(Q)cp -a packaging/debian $(DEB_TREE)/debian
	$(Q)cd $(DEB_TREE) && env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS \
		DEB_BUILD_OPTIONS="parallel=2 $(DEB_BUILD_OPTIONS)" \
		dpkg-buildpackage -b -us -uc --no-sign > ../build.log 2>&1 || \
		{ tail -40 ../build.log; exit 1; }
	$(Q)test -f $@

clean:
	rm -rf $(B) bin

-include $(shell find $(B) -path $(B)/deb -prune -o -name '*.d' -type f -print 2>/dev/null)
