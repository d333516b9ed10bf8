typedef int kt_placeholder_dtdl_; /* filled in by its owner */
