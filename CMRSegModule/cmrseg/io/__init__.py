"""Reading and writing cine studies, label maps and segmentations."""
