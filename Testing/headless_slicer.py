"""A headless 3D Slicer "application" built from the slicer-core libraries, for MRML logic tests.

Inside Slicer the application provides the scene and module logics; here we build the same pieces:
a scene, the application logic, colours, volumes, segmentations, sequences and tables logics, and the
``slicer.mrmlScene`` / ``slicer.modules`` globals that ``slicer.util`` helpers expect.
"""

from __future__ import annotations

import types
from dataclasses import dataclass

import slicer
import vtk


@dataclass
class HeadlessSlicer:
    scene: slicer.vtkMRMLScene
    app_logic: slicer.vtkSlicerApplicationLogic
    volumes_logic: slicer.vtkSlicerVolumesLogic
    segmentations_logic: slicer.vtkSlicerSegmentationsModuleLogic
    sequences_logic: slicer.vtkSlicerSequencesLogic
    tables_logic: slicer.vtkSlicerTablesLogic


def _register(app: slicer.vtkSlicerApplicationLogic, scene: slicer.vtkMRMLScene, name: str, logic):
    logic.SetMRMLApplicationLogic(app)
    logic.SetMRMLScene(scene)
    app.SetModuleLogic(name, logic)
    return logic


def create_headless_slicer() -> HeadlessSlicer:
    scene = slicer.vtkMRMLScene()
    app = slicer.vtkSlicerApplicationLogic()
    app.SetMRMLScene(scene)
    app.SetSliceLogics(vtk.vtkCollection())
    app.SetViewLogics(vtk.vtkCollection())
    color_logic = app.GetColorLogic()
    color_logic.SetMRMLScene(scene)
    color_logic.AddDefaultColorNodes()
    app.SetModuleLogic("Colors", color_logic)
    volumes = _register(app, scene, "Volumes", slicer.vtkSlicerVolumesLogic())
    segmentations = _register(app, scene, "Segmentations", slicer.vtkSlicerSegmentationsModuleLogic())
    sequences = _register(app, scene, "Sequences", slicer.vtkSlicerSequencesLogic())
    tables = _register(app, scene, "Tables", slicer.vtkSlicerTablesLogic())
    _register(app, scene, "SubjectHierarchy", slicer.vtkSlicerSubjectHierarchyModuleLogic())

    # slicer.util helpers look these globals up.
    slicer.mrmlScene = scene
    slicer.modules = types.SimpleNamespace(
        segmentations=types.SimpleNamespace(logic=lambda: segmentations),
        volumes=types.SimpleNamespace(logic=lambda: volumes),
        sequences=types.SimpleNamespace(logic=lambda: sequences),
        tables=types.SimpleNamespace(logic=lambda: tables),
    )
    return HeadlessSlicer(scene, app, volumes, segmentations, sequences, tables)


def close_headless_slicer(headless: HeadlessSlicer) -> None:
    headless.scene.Clear(True)
    for name in ("mrmlScene", "modules"):
        if hasattr(slicer, name):
            delattr(slicer, name)
