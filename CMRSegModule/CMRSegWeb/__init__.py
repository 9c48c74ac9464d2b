"""The browser review (``cmrseg review``): the module's review workflow served by trame-slicer.

It imports the Slicer core libraries and trame, so it lives outside the pure ``cmrseg`` core; the command
imports it only when it runs.
"""
