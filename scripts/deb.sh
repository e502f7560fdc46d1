#!/usr/bin/env bash
# Build the Debian package: dist/egress_VERSION_all.deb (npm run deb;
# EGRESS_DEB_OUT=DIR puts it in DIR, EGRESS_DEB_NO_BUILD=1 packages the build as it is).
# Needs only what the build needs (npm packages from the lock file) and
# dpkg-deb; nothing is fetched. What goes where, and why: docs/packaging.md.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "${EGRESS_DEB_NO_BUILD:-}" = 1 ] || npm run --silent build
version=$(node -p "require('./package.json').version")
out=${EGRESS_DEB_OUT:-dist}
root=$out/deb/root
rm -rf "$out/deb"
mkdir -p "$root/DEBIAN"
umask 022

# The program: the bundle (no node_modules at run time), run by the distribution's node.
install -d "$root/usr/lib/egress" "$root/usr/bin"
cp dist/bundle/*.js "$root/usr/lib/egress/"
printf '{ "type": "module" }\n' > "$root/usr/lib/egress/package.json"
cat > "$root/usr/bin/egress" <<'EOF'
#!/usr/bin/node
// egress: the bundled program in /usr/lib/egress (see /usr/share/doc/egress).
import('/usr/lib/egress/egress.js');
EOF
chmod 0755 "$root/usr/bin/egress"

# systemd units as systemd/ holds them (rendered for /usr/bin/egress and /var/lib/egress by
# shippedUnits(), src/kernel/persist.ts; a test keeps them equal). None is enabled at install:
# "egress persist" links restore, dns and forward; refresh, stats and sample are "systemctl enable --now".
install -d "$root/lib/systemd/system"
install -m 0644 systemd/*.service systemd/*.timer "$root/lib/systemd/system/"

# egress(8) and completions, generated from the same command table as --help.
install -d "$root/usr/share/man/man8" "$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions"
gzip -9n < dist/share/egress.8 > "$root/usr/share/man/man8/egress.8.gz"
install -m 0644 dist/share/egress.bash "$root/usr/share/bash-completion/completions/egress"
install -m 0644 dist/share/_egress "$root/usr/share/zsh/vendor-completions/_egress"

# The default policy: the commented starter (egress init), a conffile.
install -d "$root/etc/egress"
node dist/bundle/egress.js init - > "$root/etc/egress/policy.yaml"
chmod 0644 "$root/etc/egress/policy.yaml"
install -d "$root/etc/logrotate.d"
install -m 0644 packaging/debian/logrotate "$root/etc/logrotate.d/egress"
printf '%s\n' /etc/egress/policy.yaml /etc/logrotate.d/egress > "$root/DEBIAN/conffiles"

# Documentation.
doc="$root/usr/share/doc/egress"
install -d "$doc/examples"
install -m 0644 packaging/debian/copyright "$doc/copyright"
gzip -9n < packaging/debian/changelog > "$doc/changelog.gz"
install -m 0644 README.md docs/*.md "$doc/"
install -m 0644 examples/*.yaml "$doc/examples/"
install -m 0644 schema/policy.schema.json "$doc/"
install -d "$doc/schema/json"
install -m 0644 schema/json/*.schema.json "$doc/schema/json/"

# postinst makes /var/lib/egress (0700); postrm removes what persist enabled, and the state on purge.
install -m 0755 packaging/debian/postinst packaging/debian/postrm "$root/DEBIAN/"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@SIZE@/$size/" packaging/debian/control.in > "$root/DEBIAN/control"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"

deb="$out/egress_${version}_all.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
rm -rf "$out/deb"
echo "$deb"
