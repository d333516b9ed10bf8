typedef int kt_placeholder_crd_; /* filled in by its owner */
