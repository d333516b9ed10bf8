typedef int kt_placeholder_model_; /* filled in by its owner */
