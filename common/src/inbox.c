typedef int kt_placeholder_inbox_; /* filled in by its owner */
