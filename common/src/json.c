typedef int kt_placeholder_json_; /* filled in by its owner */
