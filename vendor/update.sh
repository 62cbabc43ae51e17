#!/usr/bin/env bash
# The vendored crates as "published crate + landermt.patch" (vendor/README.md).
#
#   bash vendor/update.sh check CRATE           # the published crate + its patch == vendor/CRATE
#   bash vendor/update.sh update CRATE VERSION  # vendor/CRATE from VERSION on crates.io, patch re-applied
#
# The version checked is the one in vendor/CRATE/Cargo.toml. Downloads from static.crates.io.
set -euo pipefail
cd "$(dirname "$0")"
mode=${1:?check or update}; crate=${2:?crate name, e.g. burn-flex}
[ -f "$crate/landermt.patch" ] || { echo "vendor/$crate/landermt.patch: no such patch" >&2; exit 1; }
version=${3:-$(sed -n 's/^version = "\(.*\)"/\1/p' "$crate/Cargo.toml" | head -1)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
curl -sSfL "https://static.crates.io/crates/$crate/$crate-$version.crate" | tar xz -C "$tmp"
fresh=$tmp/$crate-$version
# What the folder keeps beside the crate: no lock file or VCS stamp, our notes and licences.
rm -f "$fresh/.cargo_vcs_info.json" "$fresh/Cargo.lock"
for keep in README.landermt.md landermt.patch LICENSE-APACHE LICENSE-MIT; do
  [ -e "$crate/$keep" ] && [ ! -e "$fresh/$keep" ] && cp "$crate/$keep" "$fresh/$keep"
done
patch -s -d "$fresh" -p1 --no-backup-if-mismatch < "$crate/landermt.patch"
case $mode in
  check)
    diff -r "$fresh" "$crate" && echo "vendor/$crate = $crate $version from crates.io + landermt.patch" ;;
  update)
    rm -rf "$crate.old" && mv "$crate" "$crate.old" && mv "$fresh" "$crate" && rm -rf "$crate.old"
    echo "vendor/$crate is now $crate $version + landermt.patch; bump [patch.crates-io] users and rebuild" ;;
  *) echo "unknown mode $mode (check or update)" >&2; exit 1 ;;
esac
