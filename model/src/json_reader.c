typedef int kt_placeholder_json_reader_; /* filled in by its owner */
