"""Slicer glue for CMRSeg that needs MRML but not Qt, one job per file:

- ``VolumeNodes``: study frames <-> scalar volume nodes (LPS core geometry <-> RAS IJK-to-RAS);
- ``SequenceNodes``: a cine study <-> a volume sequence with a browser; the module's input;
- ``SegmentationNodes``: ACDC label maps <-> segmentation nodes (segments, colours, terminology);
- ``ResultsTable``: the automatic / corrected / difference table of the clinical parameters;
- ``ReviewNodes``: the nodes of one reviewed result, found again from its table;
- ``ReviewList``: the slices worth checking first (review score), looked-at and edited marks;
- ``Corrections``: what the correction changed (ml per phase, slice, structure) and the reviewer's approval;
- ``Export``: corrected segmentations, results, correction record and approval to files;
- ``Runner``: ``cmrseg segment`` as a background process (command, progress, results) or in-process;
- ``Dependencies``: the Python packages the core needs, installed on the first Apply with consent.

Tested headless against the slicer-core libraries; the module widget only calls into it.
"""
