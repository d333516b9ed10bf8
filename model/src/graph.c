typedef int kt_placeholder_graph_; /* filled in by its owner */
