"""Exports: selected assets to labeling tools, live (Label Studio) or as files, recorded per asset.

    models.py              ExportRequest / ExportPublic
    base.py                Exporter protocol, target registry, selection, recording
    files.py               jsonl, csv, label-studio-json, labelbox, coco
    label_studio.py        live push to a Label Studio project
    label_studio_tasks.py  task and label-config shapes
    runner.py              begin / finish, the background runner
    cli.py                 `loupe export`

Submodules are imported where they are used, so that `loupe --help` stays light.
"""
