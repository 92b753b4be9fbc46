#!/bin/sh
# Install Parley from this unpacked tarball, or remove it again.
#   ./install.sh                  into ~/.local (as a user) or /usr/local (as root)
#   ./install.sh --prefix DIR     into DIR (DIR/lib/parley, DIR/bin, DIR/share)
#   ./install.sh --uninstall      remove what an install put there (same --prefix rules)
# Or run it in place without installing: ./parley
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" = 0 ]; then prefix=/usr/local; else prefix=$HOME/.local; fi
action=install
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=${2:?--prefix needs a folder}; shift 2 ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    --uninstall) action=uninstall; shift ;;
    -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
commands="parley parley-cli parley-server"
sizes="16x16 32x32 48x48 64x64 128x128 256x256 512x512"

refresh() {
  command -v update-desktop-database >/dev/null 2>&1 \
    && update-desktop-database -q "$prefix/share/applications" 2>/dev/null || true
  command -v gtk-update-icon-cache >/dev/null 2>&1 \
    && gtk-update-icon-cache -q -t "$prefix/share/icons/hicolor" 2>/dev/null || true
}

if [ "$action" = uninstall ]; then
  for c in $commands; do rm -f "$prefix/bin/$c" "$prefix/share/man/man1/$c.1.gz"; done
  rm -rf "$prefix/lib/parley"
  rm -f "$prefix/share/applications/parley.desktop" \
    "$prefix/share/metainfo/org.parley.Parley.metainfo.xml" \
    "$prefix/share/icons/hicolor/scalable/apps/parley.svg"
  for s in $sizes; do rm -f "$prefix/share/icons/hicolor/$s/apps/parley.png"; done
  refresh
  echo "Parley removed from $prefix"
  exit 0
fi

mkdir -p "$prefix/lib" "$prefix/bin" "$prefix/share/applications" "$prefix/share/metainfo" \
  "$prefix/share/man/man1" "$prefix/share/icons"
rm -rf "$prefix/lib/parley"
cp -a "$here/lib/parley" "$prefix/lib/parley"
for c in $commands; do
  ln -sf "$prefix/lib/parley/$c" "$prefix/bin/$c"
  cp "$here/share/man/man1/$c.1.gz" "$prefix/share/man/man1/"
done
cp -r "$here/share/icons/hicolor" "$prefix/share/icons/"
cp "$here/share/metainfo/org.parley.Parley.metainfo.xml" "$prefix/share/metainfo/"
# The desktop entry runs "parley" from the PATH; name the file when the PATH lacks the folder.
case ":$PATH:" in
  *":$prefix/bin:"*) cp "$here/share/applications/parley.desktop" "$prefix/share/applications/" ;;
  *) sed "s|^Exec=parley|Exec=$prefix/bin/parley|" "$here/share/applications/parley.desktop" \
       > "$prefix/share/applications/parley.desktop" ;;
esac
refresh
echo "Parley installed in $prefix (commands in $prefix/bin)."
echo "Check it with: $prefix/bin/parley --self-test"
