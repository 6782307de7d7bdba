"""Listening pages (``mixrep report``): one self-contained HTML file per result.

A page embeds everything it shows, so it can be mailed or archived and opened offline in any
browser: audio players as ``data:`` URIs (:mod:`mixrep.pages.media`: the first 30 s of each file
by default, Ogg Vorbis or FLAC), figures as inline images and settings as tables
(:mod:`mixrep.pages.html`). :mod:`mixrep.pages.reports` builds the three kinds of page from what
``mixrep mix``, ``mixrep search --json`` and ``mixrep describe --json`` wrote.
"""

from mixrep.pages.reports import Page, PlayerSpec, describe_page, mix_page, player_spec, search_page, tracks_spec

__all__ = ["Page", "PlayerSpec", "describe_page", "mix_page", "player_spec", "search_page", "tracks_spec"]
