typedef int kt_placeholder_node_; /* filled in by its owner */
