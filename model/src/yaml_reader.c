typedef int kt_placeholder_yaml_reader_; /* filled in by its owner */
