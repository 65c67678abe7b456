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
$(BUILD)/daemon/version.o: CFLAGS += -DMD_VERSION='"$(MD_VERSION)"'
$(BUILD)/daemon/version.o: VERSION
