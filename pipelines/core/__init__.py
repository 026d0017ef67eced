"""What every feature shares: settings (AppConfig), the model cache, the catalog of models, devices,
jobs (Stop and progress), notices and errors shown to people, seeds, outputs on disk, media I/O.

Nothing here knows about a particular feature or about the UI.
"""
