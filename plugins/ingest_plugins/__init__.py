"""First-party plugins of ingest, registered through entry points like any third party's."""
