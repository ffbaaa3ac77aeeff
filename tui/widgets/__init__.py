"""The dashboard's widgets: a live table, a braille chart, the GPU and cost panels, the status bar, dialogs."""
