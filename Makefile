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

# The version, from one place (VERSION); the shared library's ABI major is SOVERSION.
VERSION := $(shell cat VERSION)
SOVERSION := 1

all: $(B)/mivault $(B)/libmivault.so $(B)/libmivault.a

$(B)/libmivault-internal.a: $(OBJS)
	@mkdir -p $(@D)
	ar rcs $@ $^

$(B)/mivault: $(B)/src/cli/main.o $(B)/libmivault-internal.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(B)/src/cli/main.o: CFLAGS += -DMV_VERSION='"$(VERSION)"'
$(B)/src/cli/main.o: VERSION

# ---- libmivault (include/mivault/mivault.h): the C client, as a shared and a static library ----
# The client layer and the layers under it that it can use, compiled again as PIC. The shared
# library takes every client object and pulls the rest from an archive of the others, so only
# what the client reaches is linked in; src/client/libmivault.map exports the functions of
# mivault.h and nothing else (tests/integration/test_install.py compares the two).
LIB_DIRS := src/common src/crypto src/http src/client
LIB_SRCS := $(sort $(wildcard $(addsuffix /*.c,$(LIB_DIRS))))
LIB_OBJS := $(LIB_SRCS:%.c=$(B)/pic/%.o)
LIB_CLIENT_OBJS := $(filter $(B)/pic/src/client/%,$(LIB_OBJS))
LIB_MAP := src/client/libmivault.map
PIC_CFLAGS := $(filter-out -fPIE,$(CFLAGS)) -fPIC

$(B)/pic/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(PIC_CFLAGS) -MMD -MP -c -o $@ $<

$(B)/pic/libdeps.a: $(filter-out $(LIB_CLIENT_OBJS),$(LIB_OBJS))
	@mkdir -p $(@D)
	ar rcs $@ $^

$(B)/libmivault.so.$(VERSION): $(LIB_CLIENT_OBJS) $(B)/pic/libdeps.a $(LIB_MAP)
	$(CC) -shared $(filter-out -pie,$(LDFLAGS)) -Wl,-soname,libmivault.so.$(SOVERSION) \
	  -Wl,--version-script=$(LIB_MAP) -Wl,--as-needed -o $@ \
	  $(LIB_CLIENT_OBJS) $(B)/pic/libdeps.a $(LDLIBS)

$(B)/libmivault.so: $(B)/libmivault.so.$(VERSION)
	ln -sf libmivault.so.$(VERSION) $(B)/libmivault.so.$(SOVERSION)
	ln -sf libmivault.so.$(SOVERSION) $@

# The static library: the same objects (a program linking it takes what it uses).
$(B)/libmivault.a: $(LIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $^

$(B)/tests/%: tests/unit/%.c $(B)/libmivault-internal.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Wno-missing-prototypes $(LDFLAGS) -o $@ $< $(B)/libmivault-internal.a $(LDLIBS) -lcmocka

unit: $(UNIT_BINS)

# ---- install and package (docs/operations.md) ----
#   make install PREFIX=/usr/local DESTDIR=DIR
#   make deb          build/mivault_$(VERSION)_$(DEB_ARCH).deb
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
UNITDIR ?= $(PREFIX)/lib/systemd/system
MANDIR ?= $(PREFIX)/share/man
SUBST = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@BINDIR@|$(BINDIR)|g' \
          -e 's|@VERSION@|$(VERSION)|g'

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)/mivault \
	  $(DESTDIR)$(UNITDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 0755 $(B)/mivault $(DESTDIR)$(BINDIR)/mivault
	install -m 0644 $(B)/libmivault.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libmivault.so.$(VERSION)
	ln -sf libmivault.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libmivault.so.$(SOVERSION)
	ln -sf libmivault.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libmivault.so
	install -m 0644 $(B)/libmivault.a $(DESTDIR)$(LIBDIR)/libmivault.a
	install -m 0644 include/mivault/mivault.h $(DESTDIR)$(INCLUDEDIR)/mivault/mivault.h
	$(SUBST) dist/mivault.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/mivault.pc
	$(SUBST) dist/systemd/mivault-server.service.in > $(DESTDIR)$(UNITDIR)/mivault-server.service
	$(SUBST) dist/systemd/mivault-agent@.service.in > $(DESTDIR)$(UNITDIR)/mivault-agent@.service
	chmod 0644 $(DESTDIR)$(LIBDIR)/pkgconfig/mivault.pc $(DESTDIR)$(UNITDIR)/mivault-*.service
	install -m 0644 dist/mivault.1 $(DESTDIR)$(MANDIR)/man1/mivault.1

# The Debian package: /usr, the units in /lib/systemd/system, binaries stripped, the man page
# gzipped, Depends from dpkg-shlibdeps, a postinst that creates the system user `mivault`.
DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null)
DEB_ROOT := build/deb/root
DEB_FILE := build/mivault_$(VERSION)_$(DEB_ARCH).deb

deb: all
	rm -rf build/deb
	$(MAKE) --no-print-directory install MODE=release DESTDIR=$(CURDIR)/$(DEB_ROOT) PREFIX=/usr \
	  UNITDIR=/lib/systemd/system
	strip --strip-unneeded --remove-section=.comment --remove-section=.note \
	  $(DEB_ROOT)/usr/bin/mivault $(DEB_ROOT)/usr/lib/libmivault.so.$(VERSION)
	strip --strip-debug $(DEB_ROOT)/usr/lib/libmivault.a
	gzip -9n $(DEB_ROOT)/usr/share/man/man1/mivault.1
	install -d $(DEB_ROOT)/usr/share/doc/mivault $(DEB_ROOT)/DEBIAN
	install -m 0644 dist/debian/copyright $(DEB_ROOT)/usr/share/doc/mivault/copyright
	install -m 0755 dist/debian/postinst dist/debian/postrm $(DEB_ROOT)/DEBIAN/
	install -m 0644 dist/debian/triggers $(DEB_ROOT)/DEBIAN/
	printf 'mivault (%s) unstable; urgency=medium\n\n  * Release %s (docs/operations.md, "Upgrade").\n\n -- %s  %s\n' \
	  "$(VERSION)" "$(VERSION)" "$$(sed -n 's/^Maintainer: //p' dist/debian/control.in)" \
	  "$$(git log -1 --format=%aD 2>/dev/null || date -R)" | gzip -9n > $(DEB_ROOT)/usr/share/doc/mivault/changelog.gz
	mkdir -p build/deb/debian && printf 'Source: mivault\n\nPackage: mivault\nArchitecture: any\n' \
	  > build/deb/debian/control
	cd build/deb && dpkg-shlibdeps -O -e root/usr/bin/mivault -e root/usr/lib/libmivault.so.$(VERSION) \
	  -l$(CURDIR)/$(DEB_ROOT)/usr/lib > debian/substvars
	$(SUBST) -e "s|@DEPENDS@|$$(sed -n 's/^shlibs:Depends=//p' build/deb/debian/substvars)|" \
	  -e "s|@ARCH@|$(DEB_ARCH)|" -e "s|@SIZE@|$$(du -sk --exclude=DEBIAN $(DEB_ROOT) | cut -f1)|" \
	  dist/debian/control.in > $(DEB_ROOT)/DEBIAN/control
	echo "libmivault $(SOVERSION) mivault (>= $(VERSION))" > $(DEB_ROOT)/DEBIAN/shlibs
	cd $(DEB_ROOT) && find usr lib -type f -exec md5sum {} + > DEBIAN/md5sums
	fakeroot dpkg-deb --build -Zxz $(DEB_ROOT) $(DEB_FILE)

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

-include $(OBJS:.o=.d) $(B)/src/cli/main.d $(LIB_OBJS:.o=.d)
-include $(FUZZ_OBJS:.o=.d)
.PHONY: all unit test bench check-style clean fuzz fuzz-build install deb

print-cflags:
	@echo $(CFLAGS)
print-libs:
	@echo $(LDFLAGS) $(LDLIBS)
