typedef int kt_placeholder_schema_; /* filled in by its owner */
