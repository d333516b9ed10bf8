typedef int kt_placeholder_resolve_; /* filled in by its owner */
