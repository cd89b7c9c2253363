"""The episode file format: writer, reader, dataset library, edits, exporters, speed analysis."""
