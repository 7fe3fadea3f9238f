#!/usr/bin/env bash
# Gathers 310 real photographs for the reduced-precision accuracy benchmark
# from Debian 12 (bookworm) packages, into one folder with a MANIFEST.tsv.
# Idempotent: a second run with the same photo list checks the folder and
# does nothing.
#
# What comes from where (scripts/photos.list names every file; each was
# looked at and is a natural photograph: no drawings, renders, clip art,
# cut-outs, screenshots or abstract patterns; exact and near duplicates were
# dropped):
#   gcompris-qt-data 3.1-2 (44.2 MB)        269  animals, monuments, fish,
#       tools and household objects, windmills, dams, solar panels, musicians,
#       underwater scenes (WebP, 162 to 1920 px wide; the 136 of the
#       categorization activity are about 320x240, and 61 of those have a
#       short side under 224; most come from Wikimedia Commons); they sit
#       inside Qt resource bundles
#       (usr/share/gcompris-qt/rcc/*.rcc), which this script reads itself
#   lomiri-wallpapers-16.04 20.04.0-2 (15.8 MB)  13  landscapes, dogs, plants,
#       still lifes (JPEG, 1365 to 5312 px)
#   mate-backgrounds 1.26.0-1 (46.6 MB)      12  flowers, insects, leaves,
#       dunes, water (the nature/ set; JPEG, 1280 to 2560 px)
#   python3-skimage 0.19.3-8 (20.7 MB)        8  astronaut, chelsea, coffee,
#       rocket, motorcycle_left, camera, coins, moon (the last three grey)
#   palapeli-data 4:22.12.3-1 (2.1 MB)        5  the puzzle photos
#   python3-sklearn 1.2.1+dfsg-1 (2.1 MB)     2  china, flower
#   python-matplotlib-data 3.6.3-1 (2.7 MB)   1  grace_hopper
# Download: 7 packages, 134 MB in all (about 4 s from the Debian mirror here;
# the whole run, downloads included, took 13 s on 2 cores). The .debs
# are kept in OUTPUT_DIR/.deb so that a rerun (after the list changes) does
# not download them again; delete that folder to get the space back.
#
# Output: OUTPUT_DIR/<source>-<basename> for each photo, copied byte for byte
# from the package (WebP, JPEG or PNG as shipped, RGB or greyscale, none with
# transparency), and OUTPUT_DIR/MANIFEST.tsv, tab-separated with a header
# line: file, package, version, path (inside the .deb; FILE.rcc!/MEMBER for a
# member of a Qt resource bundle), license, size (WIDTHxHEIGHT), then
# copyright and source: license and copyright are those of the last Files
# stanza of the package's /usr/share/doc/PACKAGE/copyright (DEP-5) that
# matches the file's upstream path (the KEY column of photos.list), source is
# that stanza's Comment (GCompris gives the Wikimedia Commons page there).
# A copyright longer than 200 characters (the catch-all stanza's list of
# every author) is cut with " [...]"; a license given only by its text (as
# python-matplotlib-data does) is shown as "(no short name) " and its first
# sentence.
# Note that for most packages the stanza is the catch-all "Files: *"; the
# licenses stated are what Debian's copyright files say, not a legal review.
#
# Usage: scripts/fetch_photos.sh [OUTPUT_DIR]
#   OUTPUT_DIR defaults to tests/fixtures/generated/photos (git-ignored; not under models/,
#   which is the default model repository).
#   PHOTOS_LIST picks another list (default scripts/photos.list).
#   PYTHON selects the interpreter (default python3); it needs Pillow with
#   WebP support (the PyPI wheels have it) to read the image sizes.
# Needs apt-get (Debian 12 package lists; run as root, "apt-get update" is
# done once when a download fails), dpkg-deb and tar. Nothing is installed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$ROOT/tests/fixtures/generated/photos}
LIST=${PHOTOS_LIST:-$ROOT/scripts/photos.list}
PY=${PYTHON:-python3}

# The versions the list was made from. If bookworm has moved on, the
# candidate version is taken instead (with a warning); the paths are checked
# either way and a missing one stops the script.
declare -A VERSIONS=(
  [gcompris-qt-data]=3.1-2
  [lomiri-wallpapers-16.04]=20.04.0-2
  [mate-backgrounds]=1.26.0-1
  [python3-skimage]=0.19.3-8
  [palapeli-data]=4:22.12.3-1
  [python3-sklearn]=1.2.1+dfsg-1
  [python-matplotlib-data]=3.6.3-1
)

log() { echo "fetch_photos: $*" >&2; }
die() {
  log "error: $*"
  exit 1
}

[[ -f "$LIST" ]] || die "no photo list at $LIST"
command -v apt-get >/dev/null || die "apt-get is needed (Debian 12)"
command -v dpkg-deb >/dev/null || die "dpkg-deb is needed"
"$PY" -c 'from PIL import features; assert features.check("webp")' 2>/dev/null ||
  die "$PY needs Pillow with WebP support (pip install pillow)"

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
exec 9>"$OUT/.lock"
flock 9

# Up to date when the manifest was written by this very script from this
# very list and every photo in it is still there.
STAMP=$(cat "$LIST" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)
if [[ -f "$OUT/MANIFEST.tsv" && -f "$OUT/.stamp" && "$(cat "$OUT/.stamp")" == "$STAMP" ]]; then
  missing=0
  while IFS=$'\t' read -r name _; do
    [[ "$name" == file ]] && continue
    [[ -f "$OUT/$name" ]] || missing=1
  done <"$OUT/MANIFEST.tsv"
  if ((missing == 0)); then
    log "$OUT is up to date ($(($(wc -l <"$OUT/MANIFEST.tsv") - 1)) photos)"
    exit 0
  fi
fi

# The packages the list names, in order of first appearance.
mapfile -t PACKAGES < <(grep -v -e '^#' -e '^[[:space:]]*$' "$LIST" | cut -f2 | awk '!seen[$0]++')
((${#PACKAGES[@]} > 0)) || die "$LIST names no photo"

DEB_CACHE="$OUT/.deb"
mkdir -p "$DEB_CACHE"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

UPDATED=0
apt_download() { # PACKAGE[=VERSION]
  (cd "$DEB_CACHE" && apt-get download -q "$1" >"$WORK/apt.log" 2>&1) && return 0
  if ((UPDATED == 0)) && [[ $(id -u) == 0 ]]; then
    UPDATED=1
    log "apt-get download $1 failed; running apt-get update once"
    apt-get update -q >"$WORK/apt-update.log" 2>&1 || true
    (cd "$DEB_CACHE" && apt-get download -q "$1" >"$WORK/apt.log" 2>&1) && return 0
  fi
  return 1
}

# The .deb of a package, in DEB: the cached one, else downloaded (the pinned
# version, else the candidate).
DEB=
deb_of() {
  local package=$1 version=${VERSIONS[$1]:-}
  DEB=$(find "$DEB_CACHE" -maxdepth 1 -name "${package}_*.deb" -print | sort | tail -n 1)
  [[ -n "$DEB" ]] && return 0
  if [[ -z "$version" ]] || ! apt_download "$package=$version"; then
    [[ -n "$version" ]] && log "warning: $package $version is not to be had; taking the candidate version"
    apt_download "$package" || {
      cat "$WORK/apt.log" >&2
      die "apt-get download $package failed"
    }
  fi
  DEB=$(find "$DEB_CACHE" -maxdepth 1 -name "${package}_*.deb" -print | sort | tail -n 1)
  [[ -n "$DEB" ]] || die "apt-get download left no ${package}_*.deb in $DEB_CACHE"
  log "downloaded $(basename "$DEB") ($(du -k "$DEB" | cut -f1) KiB)"
}

# Unpack only the listed files (for a resource bundle, the whole .rcc) and
# the copyright file of each package into $WORK/PACKAGE.
TSV="$WORK/packages.tsv"
: >"$TSV"
for package in "${PACKAGES[@]}"; do
  deb_of "$package"
  deb=$DEB
  version=$(dpkg-deb -f "$deb" Version)
  [[ $(dpkg-deb -f "$deb" Package) == "$package" ]] || die "$deb is not $package"
  mapfile -t members < <(grep -v -e '^#' -e '^[[:space:]]*$' "$LIST" |
    awk -F'\t' -v p="$package" '$2 == p { sub(/!.*/, "", $3); print "./" $3 }' | sort -u)
  mkdir -p "$WORK/$package"
  if ! dpkg-deb --fsys-tarfile "$deb" |
    tar -x -C "$WORK/$package" "./usr/share/doc/$package/copyright" "${members[@]}" 2>"$WORK/tar.log"; then
    cat "$WORK/tar.log" >&2
    die "$package $version lacks a listed file (see above)"
  fi
  printf '%s\t%s\t%s\n' "$package" "$version" "$(basename "$deb")" >>"$TSV"
  log "$package $version: ${#members[@]} file(s) unpacked"
done

# Copy the photos out, read their sizes, look their licenses up, write the
# manifest; photos that an earlier list had and this one drops are removed.
"$PY" - "$LIST" "$WORK" "$TSV" "$OUT" <<'PYEOF'
import fnmatch
import os
import re
import struct
import sys
import zlib

from PIL import Image

list_path, work, packages_tsv, out = sys.argv[1:5]
versions = {}
for line in open(packages_tsv, encoding="utf-8"):
    package, version, _deb = line.rstrip("\n").split("\t")
    versions[package] = version


def die(msg):
    sys.exit(f"fetch_photos: error: {msg}")


def rcc_members(path):
    """Qt resource bundle (rcc, format 1 to 3): {member path: (flags, bytes)}."""
    b = open(path, "rb").read()
    if b[:4] != b"qres":
        die(f"{path} is not a Qt resource bundle")
    version, tree, data, names = struct.unpack(">iiii", b[4:20])
    node_size = 14 if version == 1 else 22

    def name(offset):
        o = names + offset
        (n,) = struct.unpack(">H", b[o:o + 2])
        return b[o + 6:o + 6 + 2 * n].decode("utf-16-be")

    found = {}

    def walk(i, prefix):
        o = tree + i * node_size
        name_offset, flags = struct.unpack(">iH", b[o:o + 6])
        here = prefix + "/" + name(name_offset) if i else ""
        if flags & 2:  # directory
            count, first = struct.unpack(">ii", b[o + 6:o + 14])
            for child in range(first, first + count):
                walk(child, here)
        else:
            (offset,) = struct.unpack(">i", b[o + 10:o + 14])
            d = data + offset
            (size,) = struct.unpack(">I", b[d:d + 4])
            found[here] = (flags, b[d + 4:d + 4 + size])

    walk(0, "")
    return found


def rcc_content(flags, raw, where):
    if flags & 4:
        die(f"{where} is zstd-compressed, which this script does not read")
    if flags & 1:  # qCompress: 4-byte big-endian length, then zlib
        return zlib.decompress(raw[4:])
    return raw


def dep5(path):
    """The Files stanzas of a DEP-5 copyright file, as dicts."""
    stanzas, cur, key = [], {}, None
    for line in open(path, encoding="utf-8", errors="replace"):
        line = line.rstrip("\n")
        if not line.strip():
            if cur:
                stanzas.append(cur)
            cur, key = {}, None
        elif line[0] in " \t" and key:
            cur[key] += "\n" + line.strip()
        else:
            m = re.match(r"([A-Za-z-]+):\s*(.*)", line)
            if m:
                key = m.group(1).lower()
                cur[key] = m.group(2)
    if cur:
        stanzas.append(cur)
    stanzas = [s for s in stanzas if "files" in s]
    if not stanzas:
        die(f"{path} is not in the machine-readable (DEP-5) format")
    return stanzas


def license_of(stanzas, key):
    """The last stanza matching the upstream path; a pattern naming another
    extension of the same file matches too (GCompris ships its .jpg and
    .png sources as .webp)."""
    stem = os.path.splitext(key)[0]
    best = None
    for s in stanzas:
        for pattern in s["files"].split():
            if fnmatch.fnmatchcase(key, pattern) or (
                    os.path.splitext(pattern)[1] and fnmatch.fnmatchcase(stem, os.path.splitext(pattern)[0])):
                best = s
                break
    if best is None:
        die(f"no Files stanza matches {key}")
    one_line = lambda v: " ".join(v.split())
    lic = best.get("license", "")
    short = lic.split("\n")[0].strip()
    if not short:  # a license given by its text alone: its first sentence
        short = "(no short name) " + one_line(lic).split(". ")[0][:120]
    holder = one_line(best.get("copyright", ""))
    if len(holder) > 200:  # the catch-all stanza lists every author
        holder = holder[:200].rsplit(" ", 1)[0] + " [...]"
    return short, holder, one_line(best.get("comment", ""))


entries, names = [], set()
for n, line in enumerate(open(list_path, encoding="utf-8"), 1):
    if not line.strip() or line.startswith("#"):
        continue
    fields = line.rstrip("\n").split("\t")
    if len(fields) != 4:
        die(f"{list_path}:{n}: want 4 tab-separated fields, got {len(fields)}")
    name, package, path, key = fields
    if "/" in name or name.startswith(".") or name in names or name == "MANIFEST.tsv":
        die(f"{list_path}:{n}: bad or repeated name {name!r}")
    names.add(name)
    entries.append((name, package, path, key))

copyrights, bundles, rows = {}, {}, []
for name, package, path, key in entries:
    root = os.path.join(work, package)
    if package not in copyrights:
        copyrights[package] = dep5(os.path.join(root, "usr/share/doc", package, "copyright"))
    if "!" in path:
        bundle, member = path.split("!", 1)
        if bundle not in bundles:
            bundles[bundle] = rcc_members(os.path.join(root, bundle))
        if member not in bundles[bundle]:
            die(f"{package}: {bundle} has no {member}")
        data = rcc_content(*bundles[bundle][member], path)
    else:
        data = open(os.path.join(root, path), "rb").read()
    dest = os.path.join(out, name)
    if not (os.path.isfile(dest) and open(dest, "rb").read() == data):
        tmp = dest + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, dest)
    with Image.open(dest) as im:
        im.load()  # the whole image decodes
        if im.mode not in ("RGB", "L"):
            die(f"{name}: mode {im.mode}, expected a plain RGB or greyscale photo")
        size = f"{im.width}x{im.height}"
    lic, holder, comment = license_of(copyrights[package], key)
    rows.append((name, package, versions[package], path, lic, size, holder, comment))

manifest = os.path.join(out, "MANIFEST.tsv")
if os.path.isfile(manifest):  # drop photos an earlier list had
    for line in list(open(manifest, encoding="utf-8"))[1:]:
        old = line.split("\t", 1)[0]
        if old not in names and os.path.isfile(os.path.join(out, old)):
            os.remove(os.path.join(out, old))
with open(manifest + ".tmp", "w", encoding="utf-8") as f:
    f.write("file\tpackage\tversion\tpath\tlicense\tsize\tcopyright\tsource\n")
    for r in rows:
        f.write("\t".join(x.replace("\t", " ") for x in r) + "\n")
os.replace(manifest + ".tmp", manifest)
counts = {}
for r in rows:
    counts[r[1]] = counts.get(r[1], 0) + 1
print(f"fetch_photos: {out}: {len(rows)} photos (" + ", ".join(f"{p} {c}" for p, c in counts.items()) + ")",
      file=sys.stderr)
PYEOF
echo "$STAMP" >"$OUT/.stamp"
