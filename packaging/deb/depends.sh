#!/bin/sh
# depends.sh BINARY... - the Depends field of the .deb: the Debian packages
# that ship the shared libraries the binaries link directly (ELF NEEDED),
# each at least at the upstream version installed when the package is built.
set -eu
for bin in "$@"; do
    for lib in $(objdump -p "$bin" | awk '$1 == "NEEDED" { print $2 }'); do
        path=$(ldd "$bin" | awk -v lib="$lib" '$1 == lib { print $3 }')
        [ -n "$path" ] || { echo "depends.sh: $lib of $bin not found" >&2; exit 1; }
        owner=$(dpkg -S "$path" 2>/dev/null || dpkg -S "$(realpath "$path")")
        echo "${owner%%:*}"
    done
done | sort -u | while read -r pkg; do
    version=$(dpkg-query -W -f='${Version}' "$pkg")
    # The upstream version (and epoch), without the Debian revision.
    echo "$pkg (>= ${version%-*})"
done | paste -sd, - | sed 's/,/, /g'
