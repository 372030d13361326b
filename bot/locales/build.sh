#!/usr/bin/env bash
# Rebuild the translation catalogues after changing any _() text in bot/.
#   bash bot/locales/build.sh            extract, merge into the .po files, compile the .mo files
#   bash bot/locales/build.sh compile    only compile (after editing translations)
# The compiled .mo files are committed, so running the bot never needs this.
set -euo pipefail
cd "$(dirname "$0")/../.."
locales=bot/locales
if [[ "${1:-}" != "compile" ]]; then
    pybabel extract --no-location --omit-header -k __ -o "$locales/messages.pot" bot
    for lang in en ru; do
        if [[ -f "$locales/$lang/LC_MESSAGES/messages.po" ]]; then
            pybabel update --no-fuzzy-matching -d "$locales" -D messages -l "$lang" -i "$locales/messages.pot"
        else
            pybabel init -d "$locales" -D messages -l "$lang" -i "$locales/messages.pot"
        fi
    done
fi
pybabel compile --statistics -d "$locales" -D messages
