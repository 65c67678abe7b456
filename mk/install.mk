# mk/install.mk - version, installation and the Debian package.
#
#   make install         binaries, man pages, bash completion, the configuration
#                        (/etc/marketd, never overwritten), the systemd unit and
#                        the docs under $(DESTDIR)$(PREFIX); as root without
#                        DESTDIR, also the `marketd` system user and data dir
#   make uninstall       removes what `make install` installed, except the
#                        configuration, the user and the data directory
#   make deb             build/marketd_VERSION_ARCH.deb, with dpkg-deb only
#
# PREFIX (default /usr/local), DESTDIR, SYSCONFDIR (/etc), STATEDIR (/var/lib)
# and UNITDIR (PREFIX/lib/systemd/system) may be set on the command line.

# ---- the version, defined once (the VERSION file) ----------------------------
MD_VERSION := $(shell cat VERSION 2>/dev/null || echo unknown)
$(BUILD)/base/version.o: CFLAGS += -DMD_VERSION='"$(MD_VERSION)"'
$(BUILD)/base/version.o: VERSION

# ---- make install ----------------------------------------------------------------
PREFIX      ?= /usr/local
SYSCONFDIR  ?= /etc
STATEDIR    ?= /var/lib
BINDIR      := $(PREFIX)/bin
MANDIR      := $(PREFIX)/share/man
DOCDIR      := $(PREFIX)/share/doc/marketd
BASHCOMPDIR := $(PREFIX)/share/bash-completion/completions
UNITDIR     ?= $(PREFIX)/lib/systemd/system
INSTALL_BINS := marketd marketctl $(if $(wildcard tools/market-load.c),market-load)
INSTALL_DOCS := README.md $(wildcard docs/*.md)
INSTALL_OPS  := $(wildcard ops/grafana/*.json ops/prometheus/*.yml)

.PHONY: install uninstall deb

install: $(BINS)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
	  $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(UNITDIR) \
	  $(DESTDIR)$(DOCDIR)/docs $(DESTDIR)$(DOCDIR)/ops $(DESTDIR)$(SYSCONFDIR)/marketd
	install -m 0755 $(INSTALL_BINS:%=$(BUILD)/%) $(DESTDIR)$(BINDIR)/
	install -m 0644 man/marketctl.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 man/marketd.conf.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 man/marketd.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 completion/marketctl.bash $(DESTDIR)$(BASHCOMPDIR)/marketctl
	sed -e 's|/usr/local/bin/|$(BINDIR)/|g' -e 's|/usr/share/doc/marketd/|$(DOCDIR)/|g' \
	  config/marketd.service >$(DESTDIR)$(UNITDIR)/marketd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/marketd.service
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/
	install -m 0644 $(filter docs/%,$(INSTALL_DOCS)) $(DESTDIR)$(DOCDIR)/docs/
	$(if $(INSTALL_OPS),install -m 0644 $(INSTALL_OPS) $(DESTDIR)$(DOCDIR)/ops/)
	@# The configuration is the operator's: an existing one is never replaced.
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/marketd/marketd.conf ]; then \
	  echo "install: keeping $(DESTDIR)$(SYSCONFDIR)/marketd/marketd.conf"; \
	else install -m 0640 config/marketd.conf $(DESTDIR)$(SYSCONFDIR)/marketd/marketd.conf; fi
	@# The user and the data directory: on this machine only, as root.
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then \
	  sh packaging/setup.sh $(SYSCONFDIR)/marketd/marketd.conf $(STATEDIR)/marketd; \
	  echo "install: user marketd, $(STATEDIR)/marketd; systemctl daemon-reload && systemctl enable --now marketd"; \
	fi

uninstall:
	rm -f $(INSTALL_BINS:%=$(DESTDIR)$(BINDIR)/%) $(DESTDIR)$(MANDIR)/man1/marketctl.1 \
	  $(DESTDIR)$(MANDIR)/man5/marketd.conf.5 $(DESTDIR)$(MANDIR)/man8/marketd.8 \
	  $(DESTDIR)$(BASHCOMPDIR)/marketctl $(DESTDIR)$(UNITDIR)/marketd.service
	rm -rf $(DESTDIR)$(DOCDIR)

# ---- make deb: build/marketd_VERSION_ARCH.deb with dpkg-deb only ----------------------
DEB_ARCH  := $(shell dpkg --print-architecture 2>/dev/null)
DEB_STAGE := $(BUILD)/deb/root
DEB_FILE  := $(BUILD)/marketd_$(MD_VERSION)_$(DEB_ARCH).deb

deb: $(BINS)
	rm -rf $(DEB_STAGE) && mkdir -p $(DEB_STAGE)/DEBIAN
	$(MAKE) --no-print-directory install DESTDIR=$(CURDIR)/$(DEB_STAGE) PREFIX=/usr \
	  UNITDIR=/lib/systemd/system SYSCONFDIR=/etc STATEDIR=/var/lib
	strip --strip-unneeded $(INSTALL_BINS:%=$(DEB_STAGE)/usr/bin/%)
	gzip -9n $(DEB_STAGE)/usr/share/man/man*/*
	echo /etc/marketd/marketd.conf >$(DEB_STAGE)/DEBIAN/conffiles
	sed -e 's|@VERSION@|$(MD_VERSION)|' -e 's|@ARCH@|$(DEB_ARCH)|' \
	  -e "s|@SIZE@|$$(du -sk --exclude=DEBIAN $(DEB_STAGE) | cut -f1)|" \
	  -e "s|@DEPENDS@|$$(sh packaging/deb/depends.sh $(INSTALL_BINS:%=$(BUILD)/%))|" \
	  packaging/deb/control.in >$(DEB_STAGE)/DEBIAN/control
	sed -e '/^#@SETUP@$$/{r packaging/setup.sh' -e 'd}' packaging/deb/postinst \
	  >$(DEB_STAGE)/DEBIAN/postinst
	install -m 0755 packaging/deb/prerm packaging/deb/postrm $(DEB_STAGE)/DEBIAN/
	chmod 0755 $(DEB_STAGE)/DEBIAN/postinst
	dpkg-deb --root-owner-group -Zxz --build $(DEB_STAGE) $(DEB_FILE)
	@echo "deb: $(DEB_FILE) ($$(du -k $(DEB_FILE) | cut -f1) KiB)"
