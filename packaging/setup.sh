#!/bin/sh
# setup.sh [CONFIG [DATA_DIR]] - what marketd needs on the machine beyond its
# files, as root: the `marketd` system user and group, the data directory
# owned by it (0750), and the configuration readable by it only
# (root:marketd 0640; it may hold Kafka passwords). Idempotent: an existing
# user, directory or configuration is kept, only owners and modes are set.
# Run by `make install` (as root, without DESTDIR) and by the .deb's postinst.
set -eu
conf=${1:-/etc/marketd/marketd.conf}
data=${2:-/var/lib/marketd}

if ! getent group marketd >/dev/null; then
    groupadd --system marketd
fi
if ! getent passwd marketd >/dev/null; then
    useradd --system --gid marketd --home-dir "$data" --no-create-home \
        --shell /usr/sbin/nologin --comment "marketd ledger daemon" marketd
fi
install -d -o marketd -g marketd -m 0750 "$data"
if [ -f "$conf" ]; then
    chown root:marketd "$conf"
    chmod 0640 "$conf"
fi
