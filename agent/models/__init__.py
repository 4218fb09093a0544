"""Model packages on the kit: store, resumable upload, verification and inference."""
