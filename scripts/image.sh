#!/usr/bin/env bash
# wbstack's image, built offline with buildah from a binary already compiled (no compile here,
# no base image pulled): `scripts/image.sh BINARY [OUT]` stages the binary, the shared
# libraries `ldd` resolves for it and the CA bundle, builds Containerfile from that context
# and writes the image as an OCI layout (OUT/oci, tag = the binary's version) and an OCI
# archive (OUT/wbstack-image.tar). Push it with skopeo (see the README). Needs buildah (Debian's
# package); its storage stays under OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:?usage: scripts/image.sh BINARY [OUT]}
out=${2:-target/image}
version=$("$bin" --version | awk '{print $2}')
tag="ghcr.io/wbstack/wbstack:$version"
ctx="$out/context"
rm -rf "$ctx" "$out/oci" "$out/wbstack-image.tar"
mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/etc/ssl/certs" "$ctx/rootfs/tmp"
cp "$bin" "$ctx/rootfs/usr/local/bin/wbstack"
# Every library the dynamic loader resolves for the binary, the loader itself included, at the
# path the binary names it by.
ldd "$bin" | awk '/=> \//{print $3} /^\t\//{print $1}' | while read -r lib; do
  mkdir -p "$ctx/rootfs$(dirname "$lib")"
  cp -L "$lib" "$ctx/rootfs$lib"
done
cp -L /etc/ssl/certs/ca-certificates.crt "$ctx/rootfs/etc/ssl/certs/"
printf 'root:x:0:0::/:/usr/local/bin/wbstack\nnonroot:x:65532:65532::/tmp:/usr/local/bin/wbstack\n' > "$ctx/rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$ctx/rootfs/etc/group"
chmod 1777 "$ctx/rootfs/tmp"
store=(--storage-driver vfs --root "$out/storage" --runroot "$out/run")
buildah "${store[@]}" bud --quiet --isolation chroot --layers=false \
  --label "org.opencontainers.image.version=$version" \
  --label "org.opencontainers.image.title=wbstack" \
  -f Containerfile -t "$tag" "$ctx" >/dev/null
buildah "${store[@]}" push --quiet "$tag" "oci:$out/oci:$version"
buildah "${store[@]}" push --quiet "$tag" "oci-archive:$out/wbstack-image.tar:$version"
rm -rf "$out/storage" "$out/run"
digest=$(skopeo inspect --format '{{.Digest}}' "oci:$out/oci:$version")
echo "$tag@$digest"
