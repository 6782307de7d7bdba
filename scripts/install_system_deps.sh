#!/usr/bin/env bash
# System packages: FluidSynth and three General-MIDI soundfonts for the sampled-instrument corpus
# (FluidR3_GM, MuseScore_General, TimGM6mb: train on some, evaluate on a held-out one), and Debian's
# Chromium, in which the tests open a listening page (`mixrep report`, docs/report.md) headless.
# Installed with apt-get when run as root; otherwise one message says what to install. Never fails:
# without them the soundfont corpus falls back to the numpy corpus and the tests that need them are
# skipped with a reason.
set -u
# Two `make` runs started side by side (a demo beside the tests) take turns here, so the second sees
# the first one's packages instead of failing on apt's lock and silently falling back; a foreign
# apt (unattended upgrades) holding dpkg's lock is waited for below.
if command -v flock >/dev/null 2>&1; then
    exec 9>"${TMPDIR:-/tmp}/mixrep-system-deps.lock" && flock 9
fi
packages=(libfluidsynth3 fluid-soundfont-gm musescore-general-soundfont timgm6mb-soundfont chromium)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
hint="without them the soundfont corpus falls back to the numpy corpus, and its tests and the listening page's browser test are skipped"
if ! command -v apt-get >/dev/null 2>&1; then
    echo "mixrep: no apt-get here; install FluidSynth, a General-MIDI soundfont and Chromium (Debian: ${missing[*]}); $hint" >&2
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "mixrep: not root, so not installing ${missing[*]}; run: sudo apt-get install -y ${missing[*]} ($hint)" >&2
    exit 0
fi
echo "mixrep: installing ${missing[*]} (apt-get)"
wait_for_lock=(-o DPkg::Lock::Timeout=600)
if ! { apt-get "${wait_for_lock[@]}" update -qq \
        && DEBIAN_FRONTEND=noninteractive apt-get "${wait_for_lock[@]}" install -y -qq "${missing[@]}"; } >/dev/null; then
    echo "mixrep: apt-get could not install ${missing[*]}; $hint" >&2
fi
exit 0
