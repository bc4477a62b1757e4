"""Writing results: files for finished audio, and writers that grow as streamed audio arrives."""
