"""Slicer glue for CMRSeg that needs MRML but not Qt: studies <-> volume nodes, segmentations, tables.

Tested headless against the slicer-core libraries; the module widget only calls into it.
"""
