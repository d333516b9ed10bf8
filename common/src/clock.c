typedef int kt_placeholder_clock_; /* filled in by its owner */
