"""Mixes leave mixrep: a style rendered with real plugins (pedalboard) and as a REAPER project.

- :mod:`mixrep.export.pedalboard_render`: a settings file rendered on a song's tracks (the mix and its stems).
- :mod:`mixrep.export.reaper`: a REAPER project (``.rpp``) of the raw tracks with the style's
  routing and stock Cockos plug-ins, and a reader that parses one back.
- :mod:`mixrep.export.dawproject`: the same as a DAWproject file (the open exchange format), and its reader.
"""
