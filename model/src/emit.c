typedef int kt_placeholder_emit_; /* filled in by its owner */
