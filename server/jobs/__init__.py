"""Background tasks that live inside the server process, each as a cleanup_ctx."""
