"""Pictures in and out: reading, writing, resizing, and colour preservation."""
